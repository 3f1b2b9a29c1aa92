"""Alerts pushed to ops: a decision EPM refused for good, decisions still undelivered after an outage as long as
the retry schedule, EPM refusing the broker's credentials, no webhook from EPM for `[alerts] no_webhook_hours`.

They go to active admins with an e-mail address and to the chat webhook, once per occurrence: a failed
decision is a queued Notification (sent and retried by `send_due`); the other two are found by the
`ops_alerts` job, and each channel an alert reached is recorded in the audit log (action "ops_alert",
object_id the occurrence), so a restart does not send it again. Alerts name what happened and the fix to
try; they carry EPM's error texts, which the EPM client has masked, and never a secret.
"""
import logging
from datetime import timedelta

import peewee
from flask import current_app

from app import contract
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.db import database, write_transaction
from app.logs.outbound import TOKEN
from app.logs.models import OutboundCall
from app.logs.redaction import MASK, redact
from app.models import Configuration, Decision, IncomingRequest, utcnow
from app.notify import channels, recipients
from app.notify.messages import SUBJECT_PREFIX, Message, plain
from app.notify.models import (
    CHANNEL_EMAIL, KIND_DELIVERY_FAILED, STATUS_PENDING, STATUS_SENDING, Notification,
)
from app.tickets.documents import ticket_url

log = logging.getLogger(__name__)

AUDIT_ACTION = "ops_alert"
TOKEN_REFUSED = "epm-token-refused"
NO_WEBHOOK = "no-webhook"
UNDELIVERED = "decisions-undelivered"
LISTED_TICKETS = 10
NO_RECIPIENTS = "no active admin has an e-mail address"


# --- A decision EPM refused for good ---------------------------------------------------------------

def queue_delivery_failed(decision, **_):
    """Queue the delivery-failed alert for `decision`'s ticket on every configured channel (receiver of
    `decision_delivery_failed`, inside the transaction marking it failed). A ticket whose earlier alert was
    already sent gets it again: each failed decision is an occurrence of its own."""
    configuration = Configuration.default()
    for channel in channels.configured_channels(configuration):
        # A savepoint: a duplicate queued meanwhile must not abort the caller's transaction.
        with database.atomic():
            rearmed = (Notification.update(status=STATUS_PENDING, attempts=0, next_attempt_at=utcnow(),
                                           claimed_until=None, recipients=None, last_error=None, sent_at=None)
                       .where(Notification.task == decision.task_id, Notification.kind == KIND_DELIVERY_FAILED,
                              Notification.channel == channel,
                              Notification.status.not_in([STATUS_PENDING, STATUS_SENDING]))
                       .execute())
            if not rearmed:
                Notification.insert(task=decision.task_id, kind=KIND_DELIVERY_FAILED,
                                    channel=channel).on_conflict_ignore().execute()


def delivery_failed_message(task):
    """What ops read about `task`'s latest decision that EPM refused for good, and what to try."""
    decision = (Decision.select().where(Decision.task == task, Decision.status == contract.DELIVERY_FAILED)
                .order_by(Decision.id.desc()).first())
    subject = f"{SUBJECT_PREFIX} Alert: the decision on {task.number} could not be delivered to EPM"
    lines = [f"EPM refused the decision on ticket {task.number} for good, so the request in EPM is still "
             "undecided and the user is still waiting."]
    if decision is not None:
        lines += ["", f"Decision: {plain(decision.decision)} by {plain(decision.decided_by)} at "
                      f"{decision.decided_at:%Y-%m-%d %H:%M} UTC, after {decision.attempts} attempt(s).",
                  f"EPM's answer: {_masked(decision.last_error or 'none recorded')}"]
    lines += ["", "What to try: fix what EPM's answer names (HTTP 403: give the API account EPM's "
                  "\"JIT — Full Access\" permission; HTTP 404: the request may have expired or been decided in "
                  "EPM already), then decide the ticket again: it accepts a new decision. "
                  "`jitbroker outbox list --all` shows every delivery."]
    lines += ["", f"Ticket: {ticket_url(task)}"]
    return Message(plain(subject, 250), "\n".join(lines) + "\n")


# --- Occurrences the ops_alerts job finds ------------------------------------------------------------

def _refusal():
    """An EPM call that refused the broker's credentials: the token request answered 400/401, or an API
    call answered 401 again with a freshly fetched token (both EpmAuthFailed in the client)."""
    return (((OutboundCall.what == TOKEN) & OutboundCall.status.in_([400, 401]))
            | ((OutboundCall.what != TOKEN) & (OutboundCall.status == 401) & (OutboundCall.attempt >= 2)))


def _answered():
    return (OutboundCall.status >= 200) & (OutboundCall.status < 300)


def token_refused_alert(now=None):
    """(occurrence key, Message) while EPM's latest answer about the credentials was a refusal, else None.

    A streak of refusals runs until any EPM call succeeds (a delivery, a reconciliation, Test Connection);
    its key is its first refusal, so one streak gives one alert however many attempts it holds."""
    last_success = (OutboundCall.select(OutboundCall.id).where(_answered())
                    .order_by(OutboundCall.id.desc()).first())
    streak = OutboundCall.select().where(_refusal())
    if last_success is not None:
        streak = streak.where(OutboundCall.id > last_success.id)
    first = streak.order_by(OutboundCall.id).first()
    if first is None:
        return None
    count = streak.count()
    subject = f"{SUBJECT_PREFIX} Alert: EPM refuses the broker's credentials"
    body = "\n".join([
        f"Since {first.created_at:%Y-%m-%d %H:%M} UTC, EPM has refused the broker's client credentials or access "
        f"token ({count} refused call(s) so far, the first from a {plain(first.what)} call).",
        f"EPM's answer: {_masked(first.error or f'HTTP {first.status}')}",
        "",
        "Until this is fixed, decisions wait in the outbox and reconciliation stops; nothing is lost.",
        "",
        "What to try: in JIT Broker's Configuration page (EPM connection), check the client ID and enter the "
        "client secret again (regenerating the secret in EPM invalidates the old one), then press Test "
        "Connection. Waiting decisions are sent by themselves once EPM accepts the credentials.",
        "This alert is sent once; another comes only after EPM has accepted the credentials and refused them again.",
    ])
    return f"{TOKEN_REFUSED}:{first.sys_id}", Message(subject, body + "\n")


def no_webhook_alert(now=None):
    """(occurrence key, Message) when no webhook has arrived from EPM for `[alerts] no_webhook_hours`
    (0: never), else None. With none ever received, the silence counts from when the EPM connection was
    last saved; an unconfigured broker expects none."""
    hours = current_app.extensions["settings"].no_webhook_hours
    if not hours:
        return None
    now = now or utcnow()
    latest = IncomingRequest.select().order_by(IncomingRequest.received_at.desc()).first()
    if latest is not None:
        since, key, last = latest.received_at, f"{NO_WEBHOOK}:{latest.sys_id}", "The last one"
    else:
        configuration = Configuration.default()
        if not configuration.pmc_host:
            return None
        since, key = configuration.updated_at, f"{NO_WEBHOOK}:never:{configuration.updated_at:%Y%m%dT%H%M%S}"
        last = "None has arrived since the EPM connection was saved; that"
    if since > now - timedelta(hours=hours):
        return None
    subject = f"{SUBJECT_PREFIX} Alert: no webhook from EPM for {hours} hours"
    body = "\n".join([
        f"JIT Broker has received no webhook from EPM for more than {hours} hours. {last} arrived at "
        f"{since:%Y-%m-%d %H:%M} UTC.",
        "",
        "Quiet hours can be real; otherwise new requests are not reaching the broker and users wait.",
        "",
        "What to try: in EPM, check the ITSM/JIT integration's webhook URL (this broker's /webhook address) and its "
        "user name and password (an api account here); check that the broker's address is reachable from EPM "
        "(proxy, firewall, TLS certificate); `jitbroker reconcile` fetches the requests the webhooks missed. "
        "[alerts] no_webhook_hours in config.toml sets the hours (0 turns this alert off).",
        "This alert is sent once per quiet period.",
    ])
    return key, Message(subject, body + "\n")


def undelivered_alert(now=None):
    """(occurrence key, Message) while decisions are still pending after an outage as long as the retry schedule
    (EPM unreachable or answering 5xx at every step), else None. The broker goes on retrying them; the key
    is the oldest such decision, so one outage gives one alert however many decisions it holds.

    Only the outage's attempts count: not those EPM answered 409 without its record telling the decision
    (Decision.unresolved_conflicts, app/decisions/delivery.py), and not a decision whose latest answer is such a
    409. EPM answers those; they are retried within their own bound, then fail for good with their own alert."""
    steps = len(current_app.extensions["settings"].retry_delays)
    outage_attempts = Decision.attempts - Decision.unresolved_conflicts
    # The latest answer a 409 after such 409s. A 409 whose record could not be read for now (an outage) stores the
    # read's status instead (app/epm/client.py), so it counts here as any outage attempt does.
    in_conflict_retries = (Decision.unresolved_conflicts > 0) & (peewee.fn.COALESCE(Decision.last_status, 0) == 409)
    waiting = Decision.select().where(Decision.status == contract.DELIVERY_PENDING, outage_attempts >= steps,
                                      ~in_conflict_retries)
    first = waiting.order_by(Decision.id).first()
    if first is None:
        return None
    tickets = [decision.task.number for decision in waiting.order_by(Decision.id).limit(LISTED_TICKETS)]
    count = waiting.count()
    more = f" and {count - len(tickets)} more" if count > len(tickets) else ""
    subject = f"{SUBJECT_PREFIX} Alert: {count} decision(s) not delivered to EPM after {steps} attempts"
    body = "\n".join([
        f"{count} decision(s) could not reach EPM after every retry of the schedule ({steps} attempts): "
        f"{', '.join(tickets)}{more}. Their users are still waiting in EPM.",
        f"The latest answer: {_masked(first.last_error or 'none recorded')}",
        "",
        "The broker keeps retrying at the schedule's longest interval; nothing is lost.",
        "",
        "What to try: check that EPM's API host answers from the broker (DNS, proxy, firewall, TLS), and "
        "EPM's status page; `jitbroker outbox list` shows each waiting decision and `jitbroker outbox retry-all` "
        "sends them at once when EPM is back.",
        "This alert is sent once per outage; another comes only after these decisions are delivered or refused.",
    ])
    return f"{UNDELIVERED}:{first.sys_id}", Message(subject, body + "\n")


DETECTORS = (token_refused_alert, undelivered_alert, no_webhook_alert)


def check_alerts(now=None):
    """The `ops_alerts` job: send each alert found that has not reached its channels yet; returns what was
    sent, or None when there was nothing to send."""
    configuration = Configuration.default()
    sent = []
    for detect in DETECTORS:
        found = detect(now)
        if found is not None:
            key, message = found
            sent += [f"{key} by {channel}" for channel in send_once(key, message, configuration)]
    return "ops alerts sent: " + ", ".join(sent) if sent else None


def _delivered_channels(key):
    entries = AuditEntry.select(AuditEntry.detail).where(AuditEntry.action == AUDIT_ACTION,
                                                         AuditEntry.object_id == key)
    return {entry.detail.get("channel") for entry in entries}


def send_once(key, message, configuration):
    """Send `message` to ops on each configured channel the occurrence `key` has not reached yet, recording
    each success in the audit log; returns the channels it reached now. A failing channel is logged and
    tried again on the job's next run."""
    reached = []
    for channel in channels.configured_channels(configuration):
        if channel in _delivered_channels(key):
            continue
        try:
            if channel == CHANNEL_EMAIL:
                addresses = recipients.ops_addresses()
                if not addresses:
                    continue
                refused = channels.send_email(configuration, addresses, message)
                if len(refused) == len(addresses):
                    raise channels.refused_everyone(refused)
                to = f"{len(addresses) - len(refused)} admin(s)"
            else:
                channels.send_webhook(configuration.notify_webhook_url.strip(), message.chat_text)
                to = "webhook"
        except channels.NotificationError as error:
            log.warning("ops alert %s by %s could not be sent: %s", key, channel, error)
            continue
        try:
            with write_transaction():
                audit.record(AUDIT_ACTION, audit.SYSTEM_ACTOR, "ops_alert", key,
                             {"channel": channel, "subject": message.subject, "to": to})
        except peewee.PeeweeException:
            log.exception("ops alert %s was sent by %s but could not be recorded; it may be sent again", key, channel)
            continue
        log.info("ops alert sent by %s: %s", channel, message.subject)
        reached.append(channel)
    return reached


def _masked(text):
    """EPM's error text, redacted again and without the configured client secret, on one line."""
    text = redact(str(text))
    secret = Configuration.default().client_secret
    if secret:
        text = text.replace(secret, MASK)
    return plain(text, 1000)
