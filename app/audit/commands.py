"""`jitbroker audit verify` and `jitbroker audit export`: check the chain (or an export of it), copy entries out."""
from pathlib import Path

import click
from flask.cli import with_appcontext

from app.audit import export, keys, service
from app.audit.chain import check
from app.db import database

audit = click.Group("audit", help="Check and export the audit log.")


@audit.command("verify")
@click.option("--file", "export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Check an export (`audit export`, CSV or JSON) instead of the database.")
@with_appcontext
def verify_command(export_file):
    """Check every entry's signature and link; exits non-zero naming the first edited, moved, unsigned or orphaned
    entry. The keys are this process's: JITBROKER_AUDIT_KEY (or the generated one) and the previous keys."""
    if export_file is not None:
        try:
            # newline="": a CSV cell keeps the line breaks it was exported with.
            with export_file.open(encoding="utf-8", newline="") as stream:
                links = export.read_links(stream)
        except (ValueError, UnicodeDecodeError) as error:
            raise click.ClickException(f"{export_file} is not an audit export: {error}") from None
        # An export may start mid-chain (a date range) and end before keying.
        result = check(links, keys.current(), previous_hash=None, legacy_may_end=True)
    else:
        with database.connection_context():
            result = service.verify()
    if not result.intact:
        fields = result.bad.fields
        raise click.ClickException(
            f"Audit chain broken at entry {result.bad.position} ({fields.get('created_at', '?')}, "
            f"{fields.get('action', '?')} by {fields.get('actor', '?')}): {result.problem}. "
            f"{result.checked} entries before it are intact."
        )
    click.echo(f"Audit chain intact: {result.checked} entries; head hash {result.head_hash}.")
    for segment in result.segments:
        click.echo(f"  {segment.describe()}")


def _bound(_context, parameter, value):
    try:
        return service.parse_bound(value, end=parameter.name == "until")
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@audit.command("export")
@click.option("--format", "output_format", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
@click.option("--since", callback=_bound, help="From this date (YYYY-MM-DD) or UTC time, inclusive.")
@click.option("--until", callback=_bound, help="To this date, inclusive, or before this UTC time.")
@with_appcontext
def export_command(output_format, since, until):
    """Write entries, oldest first, with their hashes to standard output as CSV or a JSON array.

    CSV cells that a spreadsheet would run as a formula start with a single quote (app/audit/export.py)."""
    with database.connection_context():
        write = export.write_csv if output_format == "csv" else export.write_json
        write(service.entries_between(since, until).iterator(), _Output())


class _Output:
    """Standard output as a file-like object for the csv module, through click (so tests capture it)."""

    @staticmethod
    def write(text):
        click.echo(text, nl=False)
