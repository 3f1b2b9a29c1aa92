"""Taking a decision on a ticket (into the outbox, then one attempt at once), and changing its state or notes."""
from app import contract, events
from app.audit import service as audit
from app.db import is_sqlite, write_transaction, write_with_next
from app.decisions.delivery import (  # noqa: F401 (the service's interface)
    deliver_claimed, deliver_decision, first_claim, retry_all, retry_now,
)
from app.decisions.models import APPROVAL_PENDING, APPROVAL_USED, APPROVAL_VOID, PendingApproval
from app.decisions.rules import clean_decision
from app.epm.payloads import duration_seconds
from app.errors import BadRequest, Conflict
from app.models import Configuration, Decision, Task, utcnow
from app.tickets import decidable, outcome as ticket_outcome, service as tickets
from app.tickets.decidable import MSG_EXPIRED, is_active, latest_decision  # noqa: F401 (the service's interface)

SELF_APPROVAL_REFUSED = "self_approval_refused"


def check_may_decide(task, configuration=None):
    """Conflict when the ticket is final, expired, inactive, or has a decision on its way to EPM; else its
    JIT record."""
    jit = task.jit_request
    refused = decidable.refusal(task, configuration, jit)
    if refused is not None:
        raise Conflict(*refused)
    return jit


def is_own_request(account, task):
    """Whether `account` is the user EPM names as the requester: the same user name (ignoring case and any
    DOMAIN\\ prefix or @domain suffix), or the account's e-mail address equal to the requester's name."""
    # An admin request also names its user on the JIT record; an application request only in `requester`.
    names = {name.strip() for name in (task.requester, getattr(task.jit_request, "user_name", None))
             if name and name.strip()}
    email = (account.email or "").strip().casefold()
    return any(contract.user_key(name) == contract.user_key(account.username)
               or (email and name.casefold() == email) for name in names)


def check_not_own_approval(task, account, decision, configuration):
    """Conflict, recorded in the audit log, when `account` approves its own request and the setting does not allow it.

    A denial is let through: it gives the requester nothing they could not give up themselves."""
    if decision != contract.DECISION_APPROVED or configuration.allow_self_approval:
        return
    if is_own_request(account, task):
        # Recorded on its own: the refusal must outlive the transaction it stops.
        audit.record(SELF_APPROVAL_REFUSED, account, "ticket", task.number, {
            "requester": task.requester, "request_id": task.request_id})
        raise Conflict(contract.MSG_SELF_APPROVAL)


def lock_task(task):
    """Re-read the ticket holding its row lock, so two approvers take turns."""
    query = Task.select().where(Task.id == task.id)
    if not is_sqlite():
        query = query.for_update()
    return query.get()


def _duration_text(unit, value):
    if unit is None:
        return None
    if unit == contract.DURATION_ONCE:
        return "Once"
    return f"{value} {unit}"


def decide(task, account, decision, reason, duration_unit=None, duration_value=None, ticket_url="", via=None,
           send_now=True, within=None):
    """Record `account`'s decision on `task` and send it to EPM; returns the Decision.

    `via` names the door it came through when not the broker's own ("Slack"): said in the work note and the audit
    entry. Without `send_now` the decision waits in the outbox for the `deliver_outbox` job (a caller that must
    answer within seconds, as Slack's interactions must, cannot wait for EPM). `within`, if given, is called
    with the locked ticket inside the decision's transaction once the ticket is found decidable: what it writes
    is stored with the decision or not at all, and an exception it raises takes no decision.
    BadRequest for a broken form rule; Conflict when the ticket is inactive, final, or has a decision on its way,
    or when `account` approves its own request."""
    decision, reason, unit, value = clean_decision(decision, reason, duration_unit, duration_value)
    # Read before the write lock is taken, so the transaction holds it for less time.
    configuration = Configuration.default()
    check_not_own_approval(task, account, decision, configuration)
    with write_transaction():
        task = lock_task(task)
        jit = check_may_decide(task, configuration)
        if within is not None:
            within(task)
        record = record_decision(task, jit, account, decision, reason, unit, value, ticket_url, via, send_now)
    if not send_now:
        return record
    return deliver_claimed(record, configuration, jit)


def record_decision(task, jit, account, decision, reason, unit, value, ticket_url="", via=None, send_now=True,
                    second_to=None):
    """Store `account`'s checked decision on `task`, which the caller's transaction locked and found decidable
    (`jit`: its JIT record), with its work note, outcome and audit entry; returns the Decision (claimed for its
    first attempt with `send_now`). The first approvals waiting on the ticket end with it: the one this approval
    is the second of (`second_to`) is used, any other is void, so none is left waiting beside a decision."""
    record = Decision.create(
        task=task, decision=decision, reason=reason, duration_unit=unit, duration_value=value,
        duration_sent=duration_seconds(unit, value) if decision == contract.DECISION_APPROVED else None,
        decided_by=account.username, ticket_url=ticket_url[:500],
        # Claimed for its first attempt right away: one commit fewer than claiming it after.
        **(first_claim() if send_now else {}),
    )
    waiting = (PendingApproval.task == task.id) & (PendingApproval.status == APPROVAL_PENDING)
    if second_to is not None:
        PendingApproval.update(status=APPROVAL_USED).where(waiting, PendingApproval.id == second_to.id).execute()
    write_with_next(PendingApproval.update(status=APPROVAL_VOID).where(waiting))
    duration = _duration_text(unit, value)
    tickets.add_work_note(task, f"{decision} by {account.username}{f' via {via}' if via else ''}"
                                f"{f' for {duration}' if duration else ''}: {reason}")
    task.updated_at = utcnow()
    task.outcome, task.outcome_by, task.outcome_at = ticket_outcome.of(jit, record)
    task.save(only=[Task.updated_at, Task.outcome, Task.outcome_by, Task.outcome_at])
    audit.record(audit.DECISION, account, "ticket", task.number, {
        "decision": decision, "reason": reason, "duration": duration, "request_id": task.request_id,
        "decision_sys_id": record.sys_id, **({"via": via} if via else {}),
    })
    return record


def change_state(task, account, state_label):
    """Move a ticket to another state of its type, with a work note saying who did it."""
    value = task.ticket_type.state_value(state_label)
    if value is None:
        labels = ", ".join(label for _, label in task.ticket_type.states)
        raise BadRequest(f"Unknown state {state_label!r} for a {task.ticket_type.label}; states are {labels}",
                         extra={"fields": {"state": "unknown state"}})
    with write_transaction():
        task = lock_task(task)
        if task.state == value:
            return task
        before = task.state_label
        task.state = value
        task.updated_at = utcnow()
        closed = {task.ticket_type.closed_state} | {v for v, label in task.ticket_type.states
                                                    if label.startswith(("Closed", "Canceled", "Resolved"))}
        task.closed_at = utcnow() if value in closed else None
        task.save()
        tickets.add_work_note(task, f"State changed from {before} to {task.state_label} by {account.username}.")
        audit.record(audit.STATE_CHANGE, account, "ticket", task.number, {"old": before, "new": task.state_label})
        events.ticket_state_changed.send(task)
    return task


def add_work_note(task, account, text):
    """An approver's note on a ticket."""
    text = (text or "").strip()
    if not text:
        raise BadRequest("A work note needs some text", extra={"fields": {"work_note": "required"}})
    if len(text) > 4000:
        raise BadRequest("A work note is at most 4000 characters", extra={"fields": {"work_note": "too long"}})
    with write_transaction():
        note = tickets.add_work_note(task, text, author=account.username, system=False)
        Task.update(updated_at=utcnow()).where(Task.id == task.id).execute()
    return note
