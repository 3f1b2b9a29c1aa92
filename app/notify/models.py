"""Queued notifications: one row per ticket event and channel, sent by the scheduler.

The intake only writes rows, so a failing channel cannot slow the answer EPM waits for; the unique
(task, kind, channel) index makes queueing idempotent."""
import peewee

from app.models import QueuedWork, Task, utcnow

KIND_TICKET_CREATED = "ticket_created"
KIND_SLA_REMINDER = "sla_reminder"
# An ops alert about a ticket: its decision could not be delivered to EPM (to admins, not approvers).
KIND_DELIVERY_FAILED = "delivery_failed"
KINDS = (KIND_TICKET_CREATED, KIND_SLA_REMINDER, KIND_DELIVERY_FAILED)
OPS_KINDS = (KIND_DELIVERY_FAILED,)

CHANNEL_EMAIL = "email"
CHANNEL_WEBHOOK = "webhook"
CHANNELS = (CHANNEL_EMAIL, CHANNEL_WEBHOOK)

STATUS_PENDING = QueuedWork.PENDING    # waiting for its next attempt
STATUS_SENDING = QueuedWork.WORKING    # claimed by a process sending it now
STATUS_SENT = "sent"
STATUS_SKIPPED = "skipped"    # nobody to send it to, or the channel was switched off since
STATUS_FAILED = "failed"      # gave up after MAX_ATTEMPTS
STATUSES = (STATUS_PENDING, STATUS_SENDING, STATUS_SENT, STATUS_SKIPPED, STATUS_FAILED)


class Notification(QueuedWork):
    """A message about a ticket over one channel (to its approvers, or to ops for OPS_KINDS), and its
    delivery state."""

    # The unique (task, kind, channel) index leads with it.
    task = peewee.ForeignKeyField(Task, backref="notifications", on_delete="CASCADE", index=False)
    kind = peewee.CharField(max_length=16)
    channel = peewee.CharField(max_length=16)
    recipients = peewee.TextField(null=True)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_notification"
        indexes = (
            (("task", "kind", "channel"), True),
            (("status", "next_attempt_at"), False),
        )
