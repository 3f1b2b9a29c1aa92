"""What the ticket page shows, prepared for a template that only displays it.

Every value here may come from EPM; the templates escape all of it, and nothing
EPM sent is ever turned into a link.
"""
from dataclasses import dataclass

from flask import current_app
from markupsafe import Markup

from app import contract
from app.decisions import service as decisions
from app.epm import records
from app.models import Configuration, WorkNote
from app.ops.history import ticket_history
from app.tickets import decidable
from app.tickets.context import LOOKBACK, decision_context
from app.web import labels
from app.web.formatting import duration_words, time_element

UNIT_SECONDS = {contract.DURATION_MINUTES: 60, contract.DURATION_HOURS: 3600}


@dataclass(frozen=True)
class Action:
    """One decision button: its visible label and the decision form's URL slug."""

    label: str
    slug: str
    decision: str


def detail_rows(task, jit, host=None):
    """(label, value) pairs of what EPM sent, in the order an approver reads them.

    `host` is the computer's name when EPM's API record of an Admin Access request gave one
    (its webhook sends only the id): it is shown with the id beside it."""
    if task.kind == contract.KIND_APPLICATION:
        info = {**(jit.request_info or {})}
        info["reason"] = info.get("reason") or jit.reason
        rows = [(label, info.get(key)) for label, key in labels.APPLICATION_DETAILS]
        host_at = next(index for index, (label, _) in enumerate(rows) if label == "Host") + 1
        rows.insert(host_at, ("Computer group", name_with_id(info.get("ComputerGroup"), info.get("GroupId"))))
    else:
        rows = [(label, getattr(jit, name)) for label, name in labels.ADMIN_DETAILS]
        rows = [(label, duration_words(value) if name == "duration_requested" else value)
                for (label, value), (_, name) in zip(rows, labels.ADMIN_DETAILS)]
        if host:
            rows = [("Computer", name_with_id(host, value)) if label == "Computer ID" else (label, value)
                    for label, value in rows]
    rows += [
        ("Request time", time_element(jit.requested_at)),
        ("EPM ticket number", jit.epm_ticket_number),
        ("EPM request ID", jit.request_id),
        ("Tenant ID", jit.tenant_id),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def name_with_id(name, raw_id):
    """`Finance laptops (7e5d...)`: the name a person knows with EPM's id beside it; either alone when only one came."""
    if name and raw_id and name != raw_id:
        return f"{name} ({raw_id})"
    return name or raw_id


def all_request_info(jit):
    """Every requestInfo key EPM sent, contract keys first, then any others it added."""
    info = jit.request_info or {}
    keys = [key for key in contract.URM_REQUEST_INFO_KEYS if key in info]
    keys += sorted(key for key in info if key not in contract.URM_REQUEST_INFO_KEYS)
    return [(key, info[key]) for key in keys]


def ticket_rows(task):
    return [
        ("Ticket type", task.ticket_type.label),
        ("State", task.state_label),
        ("Kind", contract.KIND_LABELS[task.kind]),
        ("Short description", task.short_description),
        ("Assignment group", task.assignment_group),
        ("Category", task.category),
        ("Opened", time_element(task.opened_at)),
        ("Closed", time_element(task.closed_at)),
    ]


def duration_text(decision):
    """The duration an approver chose, in words: `Once`, `30 minutes`, `2 hours`; empty for a denial."""
    if decision.duration_unit in (None, contract.DURATION_ONCE):
        return labels.DURATION_UNIT_LABELS[contract.DURATION_ONCE] if decision.duration_unit else ""
    return duration_words((decision.duration_value or 0) * UNIT_SECONDS[decision.duration_unit])


def decision_rows(decision):
    """The broker's latest decision and how its delivery to EPM is going."""
    if decision is None:
        return []
    rows = [
        ("Decision", decision.decision),
        ("Reason", decision.reason),
        ("Duration", duration_text(decision)),
        ("Decided by", decision.decided_by),
        ("Decided at", time_element(decision.decided_at)),
        ("Delivery to EPM", labels.DELIVERY_LABELS.get(decision.status, decision.status)),
        ("Delivery attempts", str(decision.attempts)),
        ("Delivered at", time_element(decision.delivered_at)),
        ("Last delivery error", decision.last_error if decision.status != contract.DELIVERY_DELIVERED else None),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def latest_state(jit):
    """`Revoked at 2026-11-20 15:20:40 UTC by secops-lead`: what a later update made of EPM's decision, or None.

    Revoked and Changed are dated by their decision time, an early end by the session's end.
    Markup, with EPM's text escaped, so the time is a <time> element."""
    if jit.epm_outcome is None:
        return None
    moment = jit.final_end_time if jit.epm_outcome == contract.EPM_OUTCOME_ENDED_EARLY else jit.final_decision_time
    text = Markup("{}").format(jit.epm_outcome)
    if moment:
        text += Markup(" at {}").format(time_element(moment))
    if jit.final_decision_by:
        text += Markup(" by {}").format(jit.final_decision_by)
    return text


def epm_decision_rows(jit):
    """EPM's finalized decision, once its update event has arrived, led by its latest state when one changed it."""
    if not jit.decision_final:
        return []
    rows = [
        ("Latest state", latest_state(jit)),
        ("Decision", jit.final_decision),
        ("Decision time", time_element(jit.final_decision_time)),
        ("Performed by", jit.final_decision_by),
        ("Duration", duration_words(jit.final_duration)),
        ("Start time", time_element(jit.final_start_time)),
        ("End time", time_element(jit.final_end_time)),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def conflict_rows(jit):
    """The latest update from EPM that contradicted the decision EPM acknowledged, kept aside from the decision."""
    if jit.conflict_decision is None:
        return []
    rows = [
        ("Decision EPM sent", jit.conflict_decision),
        ("Decision time sent", time_element(jit.conflict_decision_time)),
        ("End time sent", time_element(jit.conflict_end_time)),
        ("Performed by", jit.conflict_by),
        ("Received", time_element(jit.conflict_at)),
        ("The ticket keeps", jit.final_decision),
    ]
    return [(label, value) for label, value in rows if value not in (None, "")]


def epm_record_host(task, jit, configuration):
    """The host name in EPM's API record of the request, when one was read and names it; else None."""
    if not isinstance(jit.epm_record, dict):
        return None
    return records.read_record(task.kind, jit.epm_record, records.StatusMapping.of(configuration)).host


def epm_check_text(task, jit, configuration):
    """What EPM said when its record of the request was last read ("Check with EPM", reconciliation), or None."""
    if jit.epm_checked_at is None:
        return None
    if not isinstance(jit.epm_record, dict):
        return f"EPM said it does not know request {jit.request_id}"
    record = records.read_record(task.kind, jit.epm_record, records.StatusMapping.of(configuration))
    return f"EPM said: {records.describe(record, jit.request_id)}"


def available_actions(task, account, refused):
    """The decision buttons `account` may use now: approvers, on a ticket that takes a decision (`refused` is
    None: the rule the decision service enforces, app/tickets/decidable.py)."""
    if account.role not in contract.APPROVER_ROLES or refused is not None:
        return []
    return [Action(labels.ACTION_LABELS[(decision, task.kind)], labels.DECISION_SLUGS[decision], decision)
            for decision in contract.DECISIONS]


def decision_notice(refused):
    """Why no decision buttons are offered, in the words the decision service refuses with, or None."""
    return None if refused is None else refused[0]


POLICY_MATCH_KEYS = (("Publisher", "publisher"), ("Product name", "productName"), ("SHA-256", "sha256Hash"),
                     ("Application group that asks for approval today", "applicationGroup"))


def policy_rows(task, jit):
    """What an EPM policy allowing this application would match on, as EPM described the application."""
    if task.kind != contract.KIND_APPLICATION:
        return []
    info = jit.request_info or {}
    return [(label, info[key]) for label, key in POLICY_MATCH_KEYS if info.get(key)]


def live_parts(task, account):
    """What the ticket page's live parts show (state, decision, ticket rows, notes, history): what a poll re-reads."""
    jit = task.jit_request
    configuration = Configuration.default()
    active = decisions.is_active(task, configuration)
    latest = decisions.latest_decision(task)
    # The page offers a decision exactly when the server would take one, so the two never disagree.
    refused = decidable.refusal(task, configuration, jit, latest)
    notes = list(task.work_notes.order_by(WorkNote.created_at.desc(), WorkNote.id.desc()))
    return {
        "task": task,
        "ticket_rows": [(label, value) for label, value in ticket_rows(task) if value],
        "active": active,
        "decision": latest,
        "decision_rows": decision_rows(latest),
        "epm_rows": epm_decision_rows(jit),
        "conflict_rows": conflict_rows(jit),
        "epm_check": epm_check_text(task, jit, configuration),
        "epm_checked_at": jit.epm_checked_at,
        "actions": available_actions(task, account, refused),
        "notice": decision_notice(refused),
        "can_retry": (account.role == contract.ROLE_ADMIN and latest is not None
                      and latest.status == contract.DELIVERY_PENDING),
        "notes": notes,
        "history": ticket_history(task) if account.role == contract.ROLE_ADMIN else [],
    }


def live_signature(parts):
    """Everything `live_parts` shows, as one string: equal strings render equal parts, so it makes the ETag."""
    task = parts["task"]
    shown = (
        task.number, task.state_label, task.ticket_type.label, parts["ticket_rows"], parts["decision_rows"],
        parts["epm_rows"], parts["conflict_rows"], parts["epm_check"], parts["epm_checked_at"], parts["actions"],
        parts["notice"], parts["can_retry"],
        [(note.id, note.author, note.system, note.created_at, note.text) for note in parts["notes"]],
        [(event.at, event.kind, event.summary) for event in parts["history"]],
    )
    return repr(shown)


def ticket_view(task, account):
    """Everything the ticket page template displays."""
    jit = task.jit_request
    configuration = Configuration.default()
    return {
        **live_parts(task, account),
        "kind_label": contract.KIND_LABELS[task.kind],
        "title": task.subject,
        "details": detail_rows(task, jit, epm_record_host(task, jit, configuration)),
        "request_info": all_request_info(jit) if task.kind == contract.KIND_APPLICATION else [],
        "states": [(label, label) for _, label in task.ticket_type.states],
        "lookback_days": LOOKBACK.days,
        "policy_rows": policy_rows(task, jit),
        "context": decision_context(task, current_app.extensions["settings"].policy_suggestion_approvals),
    }
