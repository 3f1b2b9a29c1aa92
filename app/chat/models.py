"""The chat outbox (one row per ticket and chat service), Slack request signatures already seen, and the
Slack users an admin linked to accounts."""
import peewee

from app.models import Account, BaseModel, QueuedWork, Task, utcnow

SERVICE_SLACK = "slack"
SERVICE_TEAMS = "teams"
SERVICES = (SERVICE_SLACK, SERVICE_TEAMS)
SERVICE_NAMES = {SERVICE_SLACK: "Slack", SERVICE_TEAMS: "Teams"}

STATUS_PENDING = QueuedWork.PENDING   # the ticket changed since the chat last showed it
STATUS_SENDING = QueuedWork.WORKING   # claimed by a process talking to the chat service now
STATUS_SENT = "sent"                  # the chat shows the ticket as it is
STATUS_FAILED = "failed"              # gave up after MAX_ATTEMPTS; the next change of the ticket tries again
STATUS_SKIPPED = "skipped"            # its service was switched off; the next change once it is back tries again


class ChatPost(QueuedWork):
    """What one chat service shows of one ticket, and whether it is up to date.

    `revision` counts the ticket's changes, and the times a late attempt's update may have shown an older
    ticket (app/chat/outbox.py, _show_again); `sent_revision` is the one the chat shows. A change while a
    process is sending bumps `revision`, and the sender leaves the row pending for the next attempt:
    the chat always ends up showing the ticket as it last was, and never sends a change twice."""

    # The unique (task, service) index leads with it.
    task = peewee.ForeignKeyField(Task, backref="chat_posts", on_delete="CASCADE", index=False)
    service = peewee.CharField(max_length=16)
    revision = peewee.IntegerField(default=1)
    sent_revision = peewee.IntegerField(default=0)
    # Slack: where the ticket's message is, once posted (chat.update needs both).
    channel_id = peewee.CharField(max_length=32, null=True)
    message_ts = peewee.CharField(max_length=32, null=True)
    # Teams: which of the two cards went out (a Workflows webhook cannot change a card).
    created_card_sent = peewee.BooleanField(default=False)
    final_card_sent = peewee.BooleanField(default=False)
    last_error = peewee.TextField(null=True)
    # Not to be tried before: the service asked (Retry-After), so a change of the ticket does not make it due sooner.
    not_before = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_chat_post"
        indexes = (
            (("task", "service"), True),
            (("status", "next_attempt_at"), False),
            (("channel_id", "message_ts"), False),
        )


class SlackSignature(BaseModel):
    """A Slack request signature accepted while its request can still pass the timestamp check, so a replay is
    refused on every host."""

    signature = peewee.CharField(max_length=80, unique=True)
    # When the 5 minutes it is kept for start: when it was seen, or its request's timestamp if that is later.
    seen_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "x_bets_pmc_jit_slack_signature"


class SlackLink(BaseModel):
    """A Slack user an admin linked to a broker account, for a user whose Slack e-mail is not the account's."""

    slack_user_id = peewee.CharField(max_length=32, unique=True)
    account = peewee.ForeignKeyField(Account, unique=True, on_delete="CASCADE")
    linked_by = peewee.CharField(max_length=150)
    linked_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "x_bets_pmc_jit_slack_link"
