"""`jitbroker notify test|list` and `jitbroker users set NAME --email ... --groups ...`."""
import click
from flask.cli import with_appcontext

from app.db import database

notify = click.Group("notify", help="Ticket notifications by e-mail and webhook.")


@notify.command("test")
@click.option("--to", "addresses", multiple=True,
              help="Send the test e-mail here (repeatable); default: the mail_from address.")
@with_appcontext
def notify_test(addresses):
    """Send a test e-mail and webhook message with the current settings."""
    from app.models import Configuration
    from app.notify.service import send_test

    with database.connection_context():
        configuration = Configuration.default()
    failed = False
    for channel, ok, outcome in send_test(configuration, list(addresses)):
        label = {True: "OK", False: "FAILED", None: "off"}[ok]
        click.echo(f"{channel}: {label}: {outcome}")
        failed = failed or ok is False
    if failed:
        raise SystemExit(1)


@notify.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include sent and skipped notifications.")
@with_appcontext
def notify_list(show_all):
    """List queued notifications: ticket, kind, channel, status, attempts, last error."""
    from app.models import Task
    from app.notify.models import STATUS_PENDING, STATUS_SENDING, Notification

    with database.connection_context():
        query = Notification.select(Notification, Task).join(Task).order_by(Notification.id)
        if not show_all:
            query = query.where(Notification.status.in_([STATUS_PENDING, STATUS_SENDING]))
        rows = list(query)
        for row in rows:
            click.echo("\t".join([row.task.number, row.kind, row.channel, row.status, f"attempts={row.attempts}",
                                  row.recipients or "", row.last_error or ""]))
    if not rows:
        click.echo("No notifications waiting." if not show_all else "No notifications.")


@click.command("set")
@click.argument("name")
@click.option("--email", help="Where this approver's notifications go (empty clears it).")
@click.option("--groups", help="Assignment groups, comma-separated (empty clears them).")
@with_appcontext
def users_set(name, email, groups):
    """Set an account's e-mail address and assignment groups."""
    from app.audit import service as audit
    from app.errors import BadRequest
    from app.models import Account
    from app.notify.settings import set_notification_settings

    if email is None and groups is None:
        raise click.UsageError("give --email and/or --groups")
    with database.connection_context():
        account = Account.by_username(name)
        if account is None:
            raise click.ClickException(f"No account named {name!r}")
        try:
            set_notification_settings(account, audit.cli_actor(), email=email, groups=groups,
                                      source_address="local")
        except BadRequest as error:
            raise click.BadParameter(error.message, param_hint=f"--{error.extra.get('field', 'email')}") from error
        account = Account.get_by_id(account.id)
    click.echo(f"{account.username}: email {account.email or '-'}, groups {account.groups or '-'}")


COMMANDS = [notify]
