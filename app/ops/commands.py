"""`jitbroker replay SYS_ID [--dry-run]`: re-process a stored webhook delivery from the command line."""
import click
from flask.cli import with_appcontext

from app.db import database
from app.errors import BrokerError


@click.command("replay")
@click.argument("sys_id")
@click.option("--dry-run", is_flag=True, help="Show what the replay would change, and change nothing.")
@with_appcontext
def replay_command(sys_id, dry_run):
    """Re-process the stored delivery SYS_ID (see the Incoming requests page) with today's code and configuration.

    Exits 1 when its processing fails again or it is still not a valid delivery (nothing changed), as for an
    unknown SYS_ID; a replay that changes nothing because nothing is left to do exits 0."""
    from app.audit.service import cli_actor
    from app.ops.replay import replay

    with database.connection_context():
        try:
            outcome = replay(sys_id, cli_actor(), dry_run=dry_run, source_address="local")
        except BrokerError as error:
            raise click.ClickException(error.message) from None
    prefix = "Dry run: " if dry_run else ""
    click.echo(f"{prefix}{outcome.message}")
    if outcome.ticket:
        click.echo(f"Ticket: {outcome.ticket}")
    click.echo(f"Status: {outcome.status}")
    if outcome.failed:
        click.get_current_context().exit(1)


COMMANDS = [replay_command]
