"""Block Kit for Slack: the ticket's message in the channel, and the decision modal with the browser form's
fields and rules.

Everything EPM supplied is flattened to plain lines, `&`, `<` and `>` escaped (so no value becomes a link or a
mention), and cut to Slack's limits (docs.slack.dev "Block Kit" reference): a value cannot make Slack refuse
the message."""
import json

from app import contract
from app.chat import status
from app.decisions.rules import requested_duration
from app.fields import duration_words
from app.notify.messages import plain

# Slack's limits for what is built here.
SECTION_TEXT_LIMIT = 3000
FIELD_TEXT_LIMIT = 2000
HEADER_LIMIT = 150
MODAL_TITLE_LIMIT = 24
# The decision form's rule (under plain_text_input's own ceiling of 3,000), so Slack stops the typing where the
# broker would refuse it.
REASON_MAX_LENGTH = contract.MAX_REASON_LENGTH

ACTION_APPROVE = "approve"
ACTION_DENY = "deny"
ACTION_OPEN = "open_ticket"
ACTION_DECISIONS = {ACTION_APPROVE: contract.DECISION_APPROVED, ACTION_DENY: contract.DECISION_DENIED}
CALLBACK_DECIDE = "decide"
# The modal's input blocks, named as the decision form's fields, so a broken rule is shown beside its field.
BLOCK_REASON = "reason"
BLOCK_UNIT = "duration_unit"
BLOCK_VALUE = "duration_value"
FIELD_BLOCKS = {"decision": BLOCK_REASON, "reason": BLOCK_REASON, "duration_unit": BLOCK_UNIT,
                "duration_value": BLOCK_VALUE}
UNIT_LABELS = {contract.DURATION_ONCE: "Once", contract.DURATION_MINUTES: "Minutes",
               contract.DURATION_HOURS: "Hours"}


def escape(text):
    """Slack mrkdwn's three escapes: no EPM value becomes a `<link>`, a `<@mention>` or `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _value(value, limit):
    return escape(plain(value, limit)) if value not in (None, "") else "—"


def _mrkdwn(text):
    return {"type": "mrkdwn", "text": text}


def _plain_text(text, limit):
    return {"type": "plain_text", "text": plain(text, limit), "emoji": False}


def what_is_requested(task):
    return task.subject if task.kind == contract.KIND_APPLICATION else "Administrative elevation"


def facts(task):
    """(label, value) of what an approver decides on: who, where, what, why, for how long, the policies."""
    return [
        ("Requested by", task.requester),
        ("Host", task.host),
        ("Application" if task.kind == contract.KIND_APPLICATION else "Access", what_is_requested(task)),
        ("Requested duration", duration_words(task.requested_duration) or "Not given"),
        ("Policy", status.policy_result(task)),
        ("State", task.state_label),
    ]


def summary_text(task):
    """The message's text: what notifications and screen readers show."""
    return plain(f"{task.number}: {contract.KIND_LABELS[task.kind]} requested by {task.requester or 'unknown'} "
                 f"on {task.host or 'unknown host'}", 300)


def ticket_blocks(task, link):
    """The ticket's message: its facts, the reason, how it moved, and the buttons it offers now."""
    fields = [_mrkdwn(f"*{label}*\n{_value(value, 300)}") for label, value in facts(task)]
    blocks = [
        {"type": "header", "text": _plain_text(f"{task.number}: {contract.KIND_LABELS[task.kind]} request",
                                               HEADER_LIMIT)},
        {"type": "section", "fields": fields},
        {"type": "section", "text": _mrkdwn(f"*Reason*\n{_value(task.jit_request.reason, 2500)}")},
    ]
    lines = status.progress_lines(task) or ["Waiting for a decision"]
    blocks.append({"type": "context", "elements": [_mrkdwn(_value("; ".join(lines), 2900))]})
    buttons = []
    if status.refusal(task) is None:
        buttons += [
            {"type": "button", "action_id": ACTION_APPROVE, "style": "primary", "value": task.number,
             "text": _plain_text(status.action_label(contract.DECISION_APPROVED, task.kind), 75)},
            {"type": "button", "action_id": ACTION_DENY, "style": "danger", "value": task.number,
             "text": _plain_text(status.action_label(contract.DECISION_DENIED, task.kind), 75)},
        ]
    buttons.append({"type": "button", "action_id": ACTION_OPEN, "url": link, "text": _plain_text("Open ticket", 75)})
    blocks.append({"type": "actions", "block_id": "ticket_actions", "elements": buttons})
    return blocks


def _option(unit):
    label = UNIT_LABELS[unit]
    if unit in contract.DURATION_LIMITS:
        low, high = contract.DURATION_LIMITS[unit]
        label = f"{label} ({low}–{high})"
    return {"text": _plain_text(label, 75), "value": unit}


def _modal(title, blocks, metadata, submit=None):
    view = {"type": "modal", "callback_id": CALLBACK_DECIDE, "title": _plain_text(title, MODAL_TITLE_LIMIT),
            "close": _plain_text("Close" if submit is None else "Cancel", 24), "blocks": blocks,
            "private_metadata": json.dumps(metadata)}
    if submit is not None:
        view["submit"] = _plain_text(submit, 24)
    return view


def decision_view(task, decision):
    """The decision modal: the reason, and for an approval the duration (Once, 5-1440 minutes or 1-24 hours),
    pre-filled with what the user asked for as the browser form is."""
    verb = status.ACTION_VERBS[decision]
    blocks = [{"type": "section", "text": _mrkdwn(
        f"*{status.action_label(decision, task.kind)}*: {task.number}\n"
        + "\n".join(f"*{label}:* {_value(value, 300)}" for label, value in facts(task)[:4]))}]
    blocks.append({"type": "input", "block_id": BLOCK_REASON, "label": _plain_text("Reason", 50),
                   "element": {"type": "plain_text_input", "action_id": BLOCK_REASON, "multiline": True,
                               "max_length": REASON_MAX_LENGTH}})
    if decision == contract.DECISION_APPROVED:
        unit, value = requested_duration(task.requested_duration) or (contract.DURATION_ONCE, "")
        options = [_option(choice) for choice in (contract.DURATION_ONCE, *contract.DURATION_LIMITS)]
        blocks.append({"type": "input", "block_id": BLOCK_UNIT, "label": _plain_text("Duration", 50),
                       "element": {"type": "radio_buttons", "action_id": BLOCK_UNIT, "options": options,
                                   "initial_option": _option(unit)}})
        number_input = {"type": "plain_text_input", "action_id": BLOCK_VALUE, "max_length": 10,
                        "placeholder": _plain_text("Minutes or hours; not needed for Once", 150)}
        if value:
            number_input["initial_value"] = value
        blocks.append({"type": "input", "block_id": BLOCK_VALUE, "optional": True,
                       "label": _plain_text("Number of minutes or hours", 50), "element": number_input})
    return _modal(f"{verb} {task.number}", blocks, {"ticket": task.number, "decision": decision}, submit=verb)


def notice_view(task, text, link=None):
    """A modal that only says something (the outcome, or why nothing was recorded), with the ticket's link."""
    blocks = [{"type": "section", "text": _mrkdwn(_value(text, SECTION_TEXT_LIMIT - 100))}]
    if link:
        blocks.append({"type": "actions", "block_id": "notice_actions", "elements": [
            {"type": "button", "action_id": ACTION_OPEN, "url": link, "text": _plain_text("Open ticket", 75)}]})
    return _modal(task.number, blocks, {"ticket": task.number})


def submitted_values(view):
    """(reason, duration_unit, duration_value) as the modal's state holds them."""
    values = view.get("state", {}).get("values", {})

    def element(block):
        return values.get(block, {}).get(block, {}) or {}

    unit = (element(BLOCK_UNIT).get("selected_option") or {}).get("value")
    return element(BLOCK_REASON).get("value") or "", unit, element(BLOCK_VALUE).get("value")
