"""`jitbroker audit verify` and `jitbroker audit export`: check the chain, copy entries out."""
import click
from flask.cli import with_appcontext

from app.audit import export, service
from app.db import database

audit = click.Group("audit", help="Check and export the audit log.")


@audit.command("verify")
@with_appcontext
def verify_command():
    """Check every entry's hash and link; exits non-zero naming the first edited or orphaned entry."""
    with database.connection_context():
        result = service.verify()
    if not result.intact:
        entry = result.bad_entry
        raise click.ClickException(
            f"Audit chain broken at entry {entry.id} ({entry.created_at:%Y-%m-%d %H:%M:%S} UTC, {entry.action} by "
            f"{entry.actor}): {result.problem}. {result.checked} entries before it are intact."
        )
    click.echo(f"Audit chain intact: {result.checked} entries; head hash {result.head_hash}.")


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

