"""Queueing ticket notifications, sending them from the scheduler, and SLA reminders.

`queue_ticket_created` runs inside the transaction that creates a ticket and only
writes rows; `send_due` (a scheduler job) claims due rows one at a time
(app/claims.py), so two processes never send the same one, and retries failures
with growing gaps until MAX_ATTEMPTS.
"""
import logging
from datetime import timedelta
from email.utils import parseaddr

import peewee

from app import claims, events
from app.db import database, write_transaction
from app.models import Configuration, Task, utcnow
from app.notify import alerts, channels, messages, recipients
from app.notify.models import (
    CHANNEL_EMAIL, CHANNEL_WEBHOOK, KIND_SLA_REMINDER, KIND_TICKET_CREATED, OPS_KINDS, STATUS_FAILED,
    STATUS_PENDING, STATUS_SENT, STATUS_SKIPPED, Notification,
)
from app.tickets import decidable
from app.tickets.documents import public_url_notice, warn_once_without_public_url
from app.tickets.rows import undecided_condition

log = logging.getLogger(__name__)

# Seconds between attempts; the last gap repeats. About a day of tries in all.
RETRY_DELAYS = (30, 60, 120, 300, 600, 1800, 3600)
MAX_ATTEMPTS = 30
CLAIM_SECONDS = channels.TIMEOUT_SECONDS * 3 + 5
SEND_BATCH = 50
SLA_BATCH = 200
# The notifications asking approvers for a decision.
ASKING_KINDS = (KIND_TICKET_CREATED, KIND_SLA_REMINDER)


configured_channels = channels.configured_channels


def _queue(task, kind, configuration):
    queued = 0
    for channel in configured_channels(configuration):
        if Notification.select().where(Notification.task == task, Notification.kind == kind,
                                       Notification.channel == channel).exists():
            continue
        try:
            # A savepoint: a duplicate queued meanwhile must not abort the caller's transaction.
            with database.atomic():
                Notification.create(task=task, kind=kind, channel=channel)
            queued += 1
        except peewee.IntegrityError:
            pass
    return queued


def queue_ticket_created(task, configuration=None):
    """Queue the new-ticket notification on every configured channel (`ticket_created`, inside the creating
    transaction)."""
    return _queue(task, KIND_TICKET_CREATED, configuration or Configuration.default())


def init_app(app):
    """Queue a notification for every ticket created, by whichever path creates it, and an ops alert for every
    decision EPM refused for good; offer the pages `public_url_notice()`."""
    events.ticket_created.connect(queue_ticket_created)
    events.decision_delivery_failed.connect(alerts.queue_delivery_failed)
    app.add_template_global(public_url_notice, "public_url_notice")


# --- SLA reminders ------------------------------------------------------------------------------

def waiting_tickets(configuration, now=None):
    """Tickets awaiting a decision (rows.undecided_condition: what decidable.refusal checks before a reminder
    goes), opened more than `sla_minutes` ago, with no reminder queued yet."""
    cutoff = (now or utcnow()) - timedelta(minutes=configuration.sla_minutes)
    reminded = Notification.select(Notification.task).where(Notification.kind == KIND_SLA_REMINDER)
    return (Task.select()
            .where(undecided_condition(configuration.active_state_labels), Task.opened_at <= cutoff,
                   Task.id.not_in(reminded))
            .order_by(Task.opened_at)
            .limit(SLA_BATCH))


def queue_sla_reminders(now=None):
    """Queue one reminder per ticket waiting longer than `sla_minutes` (0: off); returns how many tickets."""
    configuration = Configuration.default()
    if not configuration.sla_minutes or not configured_channels(configuration):
        return 0
    reminded = 0
    for task in list(waiting_tickets(configuration, now)):
        with write_transaction():
            if _queue(task, KIND_SLA_REMINDER, configuration):
                reminded += 1
    if reminded:
        log.info("queued SLA reminders for %s tickets", reminded)
    return reminded


# --- Sending ------------------------------------------------------------------------------------

def _finish(notification, **values):
    """Store the outcome `values` of the attempt this process claimed `notification` for, unless a later attempt
    claimed it meanwhile (this one outlived its claim: a slow mail server): that one's outcome stands."""
    if not claims.release_attempt(Notification, notification, **values):
        log.info("notification %s (%s %s) was claimed by a later attempt meanwhile: the outcome of its attempt %s "
                 "is dropped", notification.id, notification.channel, notification.kind, notification.attempts)


def _deliver(notification, configuration):
    """Send one notification; returns (status, recipients, note)."""
    task = notification.task
    if notification.kind in ASKING_KINDS:
        # Queued while the ticket awaited a decision, and held up since (a channel down): approvers are not
        # asked for a decision the ticket no longer takes.
        refused = decidable.refusal(task, configuration)
        if refused is not None:
            return STATUS_SKIPPED, None, f"the ticket no longer awaits a decision: {': '.join(filter(None, refused))}"
    if notification.kind in OPS_KINDS:
        message = alerts.delivery_failed_message(task)
    elif notification.kind == KIND_SLA_REMINDER:
        message = messages.ticket_message(task, notification.kind, configuration.sla_minutes)
    else:
        message = messages.ticket_message(task, notification.kind)
    if notification.channel == CHANNEL_EMAIL:
        if not channels.email_configured(configuration):
            return STATUS_SKIPPED, None, "e-mail is no longer configured"
        if notification.kind in OPS_KINDS:
            addresses = recipients.ops_addresses()
            if not addresses:
                return STATUS_SKIPPED, None, alerts.NO_RECIPIENTS
        else:
            addresses = recipients.email_addresses(task)
            if not addresses:
                group = task.assignment_group or "any group"
                return STATUS_SKIPPED, None, f"no active approver with an e-mail address in {group}"
        # Addresses an earlier attempt reached are not written to again.
        already = _sent_to(notification)
        remaining = [address for address in addresses if address not in already]
        if not remaining:
            return STATUS_SENT, ", ".join(already), None
        try:
            refused = channels.send_email(configuration, remaining, message)
        except channels.NotificationError as error:
            raise channels.NotificationError(str(error), [*already, *error.sent]) from error
        sent = [*already, *(address for address in remaining if address not in refused)]
        if not sent:
            raise channels.refused_everyone(refused)
        note = f"refused by the mail server: {', '.join(refused)}" if refused else None
        return STATUS_SENT, ", ".join(sent), note
    if not channels.webhook_configured(configuration):
        return STATUS_SKIPPED, None, "the notification webhook is no longer configured"
    channels.send_webhook(configuration.notify_webhook_url.strip(), message.chat_text)
    return STATUS_SENT, "webhook", None


def send_notification(notification):
    """One attempt at a due notification, if this process can claim it; returns it re-read."""
    claimed = claims.claim_attempt(Notification, notification.id, CLAIM_SECONDS)
    if claimed is None:
        return Notification.get_by_id(notification.id)
    notification = claimed
    try:
        status, sent_to, note = _deliver(notification, Configuration.default())
    except channels.NotificationError as error:
        _record_failure(notification, str(error), ", ".join(error.sent) or None, error.retry_after)
    else:
        _finish(notification, status=status, recipients=sent_to, last_error=note,
                sent_at=utcnow() if status == STATUS_SENT else None)
    return Notification.get_by_id(notification.id)


def _sent_to(notification):
    """The e-mail addresses earlier attempts at `notification` reached."""
    return [address.strip() for address in (notification.recipients or "").split(",") if address.strip()]


def _record_failure(notification, reason, sent_to=None, retry_after=None):
    log.warning("%s notification %s for ticket %s failed (attempt %s): %s", notification.channel,
                notification.kind, notification.task.number, notification.attempts, reason)
    if notification.attempts >= MAX_ATTEMPTS:
        _finish(notification, status=STATUS_FAILED, last_error=reason[:2000], recipients=sent_to)
        return
    delay = claims.retry_delay(RETRY_DELAYS, notification.attempts, retry_after)
    _finish(notification, status=STATUS_PENDING, last_error=reason[:2000], recipients=sent_to,
            next_attempt_at=utcnow() + timedelta(seconds=delay))


def send_due(limit=SEND_BATCH):
    """One attempt for each due notification (or one abandoned mid-send); returns how many were sent."""
    warn_once_without_public_url()  # the sending process says it even when nothing is due
    due = Notification.select(Notification.id).where(claims.due(Notification)).order_by(Notification.next_attempt_at)
    sent = 0
    for row in list(due.limit(limit)):
        if send_notification(row).status == STATUS_SENT:
            sent += 1
    return sent


def send_test(configuration, to=None):
    """Send a test message on every configured channel now; returns [(channel, ok, outcome)],
    `ok` None for a channel that is not configured.

    E-mail goes to the addresses in `to`, or to the sender address when none is given.
    """
    message = messages.test_message()
    results = []
    if channels.email_configured(configuration):
        addresses = list(to or [])
        if not addresses and parseaddr(configuration.mail_from)[1]:
            addresses = [parseaddr(configuration.mail_from)[1]]
        try:
            if not addresses:
                raise channels.NotificationError("say where to send it: --to ADDRESS (or set mail_from)")
            refused = channels.send_email(configuration, addresses, message)
            if len(refused) == len(addresses):
                raise channels.refused_everyone(refused)
            results.append((CHANNEL_EMAIL, True, f"sent to {', '.join(addresses)}"
                            + (f"; refused: {', '.join(refused)}" if refused else "")))
        except channels.NotificationError as error:
            results.append((CHANNEL_EMAIL, False, str(error)))
    else:
        results.append((CHANNEL_EMAIL, None, "not configured (smtp_host is empty)"))
    if channels.webhook_configured(configuration):
        try:
            channels.send_webhook(configuration.notify_webhook_url.strip(), message.chat_text)
            results.append((CHANNEL_WEBHOOK, True, "sent"))
        except channels.NotificationError as error:
            results.append((CHANNEL_WEBHOOK, False, str(error)))
    else:
        results.append((CHANNEL_WEBHOOK, None, "not configured (notify_webhook_url is empty)"))
    return results
