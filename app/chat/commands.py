"""`jitbroker slack link NAME SLACK_USER_ID`, `slack unlink NAME`, `slack links` and `slack send`: the explicit
link an admin sets for a Slack user whose Slack e-mail is not the account's, and the chat outbox by hand."""
import click
from flask.cli import with_appcontext

from app.db import database, write_transaction

slack = click.Group("slack", help="The Slack app: users linked to accounts, and the chat outbox.")
AUDIT_LINK = "slack_user_linked"
AUDIT_UNLINK = "slack_user_unlinked"


def _account(name):
    from app.models import Account

    account = Account.get_or_none(Account.username == name)
    if account is None:
        raise click.ClickException(f"No account {name}")
    return account


@slack.command("link")
@click.argument("name")
@click.argument("slack_user_id")
@with_appcontext
def slack_link(name, slack_user_id):
    """Let Slack user SLACK_USER_ID (U0123ABCD, from their Slack profile) decide as account NAME."""
    from app.audit import service as audit
    from app.chat.models import SlackLink

    user_id = slack_user_id.strip().upper()
    if not (user_id.isascii() and user_id.isalnum() and user_id[:1] in ("U", "W") and len(user_id) <= 32):
        raise click.ClickException(f"{slack_user_id!r} is not a Slack user id (like U0123ABCD)")
    with database.connection_context(), write_transaction():
        account = _account(name)
        SlackLink.delete().where((SlackLink.account == account) | (SlackLink.slack_user_id == user_id)).execute()
        SlackLink.create(slack_user_id=user_id, account=account, linked_by=audit.cli_actor())
        audit.record(AUDIT_LINK, audit.cli_actor(), "account", account.username, {"slack_user_id": user_id},
                     source_address="local")
    click.echo(f"Slack user {user_id} decides as {account.username}.")


@slack.command("unlink")
@click.argument("name")
@with_appcontext
def slack_unlink(name):
    """Remove the Slack user linked to account NAME (its Slack e-mail may still match the account's)."""
    from app.audit import service as audit
    from app.chat.models import SlackLink

    with database.connection_context(), write_transaction():
        account = _account(name)
        removed = SlackLink.delete().where(SlackLink.account == account).execute()
        if removed:
            audit.record(AUDIT_UNLINK, audit.cli_actor(), "account", account.username, {}, source_address="local")
    click.echo(f"{account.username}: {'link removed' if removed else 'no Slack user was linked'}.")


@slack.command("links")
@with_appcontext
def slack_links():
    """List the Slack users linked to accounts."""
    from app.chat.models import SlackLink
    from app.models import Account

    with database.connection_context():
        for link in SlackLink.select(SlackLink, Account).join(Account).order_by(Account.username):
            click.echo(f"{link.account.username}\t{link.slack_user_id}\tlinked by {link.linked_by}")


@slack.command("send")
@with_appcontext
def slack_send():
    """Bring every due Slack message and Teams card up to date now (the `send_chat` job does it every 5 s)."""
    from app.chat.outbox import send_due

    with database.connection_context():
        click.echo(f"{send_due()} chat message(s) up to date.")
