"""`POST /integrations/slack/interactions`: Slack's Interactivity Request URL.

Every request is verified with the signing secret (slack_sdk's SignatureVerifier: v0 signature, timestamp
within 5 minutes) and its signature may be used once: a signature seen before is a replay, refused on every host
because the seen ones are kept in the database while their requests' timestamps still pass. A refused request gets
401 and a log line. Each interaction is answered within Slack's 3 seconds: a button opens the decision modal
there and then (its trigger id lasts 3 seconds); a submitted modal records the decision in the outbox, the same
service the browser uses, and the decision goes to EPM and the message updates after the answer."""
import json
import logging
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

import peewee
from flask import Blueprint, after_this_request, current_app, jsonify, request
from slack_sdk.signature import SignatureVerifier

from app import contract
from app.auth import steps
from app.auth.step_up import approval_needs_step_up
from app.chat import blocks, outbox, slack, status
from app.chat.models import SlackSignature
from app.db import write_transaction
from app.decisions import approvals, delivery
from app.decisions.models import PendingApproval
from app.errors import BadRequest, Conflict, Unauthorized
from app.models import Decision, Task, utcnow
from app.tickets.documents import ticket_url

bp = Blueprint("slack_interactions", __name__)
log = logging.getLogger(__name__)

INTERACTIONS_PATH = "/integrations/slack/interactions"
REPLAY_WINDOW_SECONDS = 5 * 60
# Seconds since 1970 need 10 digits until the year 2286; a longer "timestamp" is no timestamp (nor a number
# worth converting: thousands of digits are beyond int() and float arithmetic).
MAX_TIMESTAMP_DIGITS = 12
VIA = "Slack"

MSG_UNMAPPED = ("Your Slack account is not linked to a JIT Broker account: nothing was recorded. Ask an admin to "
                "set your e-mail address on your broker account (jitbroker users set NAME --email ...) or to link "
                "your Slack user (jitbroker slack link NAME SLACK_USER_ID).")
MSG_ROLE = "Your JIT Broker account {name} ({role}) may not decide requests: nothing was recorded."
MSG_REFUSED = "Your JIT Broker account {name} may not decide requests now: {why}. Nothing was recorded."
MSG_STEP_UP = ("Approving Admin Access needs a fresh sign-in at your identity provider, which Slack cannot do. "
               "Nothing was recorded: approve it on the ticket page.")
MSG_NO_TICKET = "There is no ticket {number} any more: nothing was recorded."


class SlackRefused(Unauthorized):
    """A request that is not Slack's, or not fresh."""


def _verify(body):
    """Refuse (401, with a log line naming why but no secret) a request Slack did not sign, an old one, or a
    replay of one already accepted."""
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    why = None
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        why = "no request timestamp"
    elif abs(int(time.time()) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        why = "its timestamp is more than 5 minutes away"
    elif not SignatureVerifier(current_app.extensions["settings"].slack_signing_secret).is_valid(
            body, timestamp, signature):
        why = "a bad signature"
    elif not _first_use(signature, int(timestamp)):
        why = "a replayed signature"
    if why:
        log.warning("refused a Slack interaction from %s: %s", request.remote_addr, why)
        raise SlackRefused("Not a request from Slack", f"Refused: {why}")


def _first_use(signature, timestamp):
    """Record `signature`, of a request timestamped `timestamp` (seconds since the epoch), as seen; False when it
    was seen before.

    Kept until the request could no longer pass the timestamp check, 5 minutes after the later of its own
    timestamp and now: a request whose sender's clock runs ahead is accepted until 5 minutes after its
    timestamp, so forgetting it 5 minutes after it was seen would let the same bytes in again."""
    now = utcnow()
    sent_at = datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)
    try:
        with write_transaction():
            SlackSignature.delete().where(SlackSignature.seen_at < now - timedelta(seconds=REPLAY_WINDOW_SECONDS)
                                          ).execute()
            # `seen_at` is the moment its window runs from: the later of the two.
            SlackSignature.create(signature=signature[:80], seen_at=max(now, sent_at))
    except peewee.IntegrityError:
        return False
    return True


@bp.post(INTERACTIONS_PATH)
def interaction():
    settings = current_app.extensions["settings"]
    if not slack.slack_enabled(settings):
        log.warning("a Slack interaction arrived but Slack is not configured")
        raise SlackRefused("Slack is not configured")
    body = request.get_data(cache=True)
    _verify(body)
    try:
        payload = json.loads(parse_qs(body.decode("utf-8"), strict_parsing=True)["payload"][0])
    except (KeyError, ValueError, UnicodeDecodeError):
        raise BadRequest("Expected a form-encoded `payload` holding JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("Expected a form-encoded `payload` holding a JSON object")
    try:
        kind = payload.get("type")
        if kind == "block_actions":
            _button(payload)
            return "", 200
        if kind == "view_submission" and payload.get("view", {}).get("callback_id") == blocks.CALLBACK_DECIDE:
            return jsonify(_submission(payload))
    except (AttributeError, TypeError):
        # Signed, yet not shaped as Slack documents its payloads: nothing was recorded.
        raise BadRequest("The payload is not shaped as Slack sends it") from None
    return "", 200  # other interactions (a link button's click, a closed modal) need only the acknowledgement


def _user_id(payload):
    return str((payload.get("user") or {}).get("id") or "")


def _decider(user_id):
    """The account deciding as Slack user `user_id`; else (None, the message saying why not)."""
    account, _found_by = slack.account_for(user_id)
    if account is None:
        return None, MSG_UNMAPPED
    if account.role not in contract.APPROVER_ROLES:
        return None, MSG_ROLE.format(name=account.username, role=account.role)
    # The rule every door applies (app/auth/steps.py): a step owed, local sign-in for admins only, the identity
    # provider no longer vouching for the person.
    refusal = steps.decider_refusal(account)
    if refusal is not None:
        return None, MSG_REFUSED.format(name=account.username, why=refusal.message)
    return account, None


def _button(payload):
    """A decision button: open the modal, or tell the user (ephemerally) why not."""
    action = next(iter(payload.get("actions") or []), {})
    decision = blocks.ACTION_DECISIONS.get(action.get("action_id"))
    if decision is None:
        return
    user_id = _user_id(payload)
    channel_id = (payload.get("channel") or {}).get("id") or (payload.get("container") or {}).get("channel_id")
    number = str(action.get("value") or "")
    task = Task.get_or_none(Task.number == number.upper())
    try:
        account, why_not = _decider(user_id)
        if task is None:
            why_not = MSG_NO_TICKET.format(number=number)
        elif account is not None:
            why_not = status.refusal(task)
        if why_not:
            slack.tell(channel_id, user_id, why_not)
            return
        if decision == contract.DECISION_APPROVED and approval_needs_step_up(account, task):
            view = blocks.notice_view(task, MSG_STEP_UP, ticket_url(task))
        else:
            view = blocks.decision_view(task, decision)
        slack.open_view(payload.get("trigger_id"), view)
    except slack.ChatError as error:
        log.warning("could not answer a Slack button on %s: %s", number, error)


def _submission(payload):
    """A submitted decision modal: record the decision, or show what is wrong beside its field."""
    view = payload.get("view") or {}
    try:
        metadata = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        metadata = {}
    task = Task.get_or_none(Task.number == str(metadata.get("ticket", "")).upper())
    decision = metadata.get("decision")
    if task is None or decision not in contract.DECISIONS:
        return {"response_action": "errors", "errors": {blocks.BLOCK_REASON: "This form no longer matches a ticket"}}
    try:
        account, why_not = _decider(_user_id(payload))
    except slack.ChatError as error:
        log.warning("could not look up a Slack user deciding %s: %s", task.number, error)
        account, why_not = None, "Slack could not tell who you are just now: nothing was recorded. Try again."
    if account is None:
        return _notice(task, why_not)
    if decision == contract.DECISION_APPROVED and approval_needs_step_up(account, task):
        return _notice(task, MSG_STEP_UP, ticket_url(task))
    reason, unit, value = blocks.submitted_values(view)
    is_approval = decision == contract.DECISION_APPROVED
    try:
        recorded = approvals.submit_decision(task, account, decision, reason, unit if is_approval else None,
                                             value if is_approval else None, ticket_url(task), via=VIA,
                                             send_now=False)
    except BadRequest as error:
        fields = error.extra.get("fields") or {"reason": error.message}
        found = {}
        for name, message in fields.items():
            found.setdefault(blocks.FIELD_BLOCKS.get(name, blocks.BLOCK_REASON), message)
        return {"response_action": "errors", "errors": found}
    except Conflict as error:
        return _notice(task, error.message, ticket_url(task))
    if isinstance(recorded, PendingApproval):
        return _notice(task, "First approval recorded. A second approver must approve before the decision "
                             "goes to EPM.", ticket_url(task))
    _deliver_after_answer(recorded)
    return _notice(task, f"{recorded.decision} by {account.username}: it goes to EPM now, and the ticket's "
                         "message in the channel follows it.", ticket_url(task))


def _notice(task, text, link=None):
    return {"response_action": "update", "view": blocks.notice_view(task, text, link)}


def _deliver_after_answer(decision):
    """Once Slack has its answer: the decision's first attempt at EPM, then the ticket's message brought up to
    date (the `deliver_outbox` and `send_chat` jobs catch anything a stopped process left)."""
    app, decision_id, task_id = current_app._get_current_object(), decision.id, decision.task_id

    def _deliver():
        delivery.deliver_decision(Decision.get_by_id(decision_id))

    @after_this_request
    def _later(response):
        response.call_on_close(lambda: outbox.send_in_background(app, task_id, before=_deliver))
        return response
