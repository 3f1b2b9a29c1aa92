"""Two-person approval: when a rule requires it, the first approval waits for a second approver.

`submit_decision` is what the decision form and the JSON API call instead of
`decide` directly. On a ticket that needs two approvers, the first approval is
stored as a PendingApproval (with a work note) and nothing goes to EPM; the
second, from a different person, calls `decide`, which sends it to EPM as usual.
Neither approver may be the requester. A denial needs one person and goes straight
through. While a ticket's policies are still being evaluated nobody can approve it:
until the rules have run, nobody knows whether one approval is enough.
"""
from marshmallow import ValidationError

from app import contract
from app.audit import service as audit
from app.db import write_transaction
from app.decisions import service as decisions
from app.decisions.rules import clean_decision, first_message
from app.errors import BadRequest, Conflict
from app.models import Task, utcnow
from app.policies.matching import user_key
from app.policies.models import (
    APPROVAL_PENDING, APPROVAL_USED, EVALUATION_PENDING, EVALUATION_RUNNING, PendingApproval, PolicyEvaluation,
)
from app.policies.queue import required_approvals
from app.tickets import service as tickets

MSG_REQUESTER = "The requester cannot approve their own request"
MSG_SAME_APPROVER = "You gave the first approval; a different approver must give the second"
MSG_EVALUATING = "The policies are still being evaluated for this request; approve it again shortly"


def pending_approval(task):
    return (PendingApproval.select()
            .where(PendingApproval.task == task, PendingApproval.status == APPROVAL_PENDING)
            .order_by(PendingApproval.id).first())


def is_requester(account, task):
    """Whether the broker account is the EPM user who asked (compared without domain and case)."""
    return bool(task.requester) and user_key(account.username) == user_key(task.requester)


def _check_evaluated(task):
    """Refuse an approval while the ticket's evaluation is queued or running (it may require two approvers)."""
    evaluation = PolicyEvaluation.get_or_none(PolicyEvaluation.task == task)
    if evaluation is not None and evaluation.status in (EVALUATION_PENDING, EVALUATION_RUNNING):
        raise Conflict(MSG_EVALUATING)


def _check_may_decide(task):
    """The same refusals `decide` gives, before a first approval is stored."""
    previous = decisions.latest_decision(task)
    if (previous is not None and previous.status == contract.DELIVERY_DELIVERED) or task.jit_request.decision_final:
        raise Conflict(contract.MSG_FINAL)
    if not decisions.is_active(task):
        raise Conflict(contract.MSG_INACTIVE)
    if previous is not None and previous.is_open:
        raise Conflict(contract.MSG_DECISION_IN_FLIGHT, f"{previous.decision} by {previous.decided_by}")


def submit_decision(task, account, decision, reason, duration_unit=None, duration_value=None, ticket_url=""):
    """Decide, or record a first approval; returns the Decision, or the PendingApproval when one is recorded."""
    is_approval = str(decision or "").strip().capitalize() == contract.DECISION_APPROVED
    if is_approval:
        _check_evaluated(task)
    needs_two = required_approvals(task) >= 2
    if not (needs_two and is_approval):
        return decisions.decide(task, account, decision, reason, duration_unit, duration_value, ticket_url)
    try:
        _decision, reason, unit, value = clean_decision({
            "decision": decision, "reason": reason, "duration_unit": duration_unit, "duration_value": duration_value,
        })
    except ValidationError as error:
        fields = {name: messages[0] for name, messages in error.messages.items()}
        raise BadRequest(first_message(error.messages), extra={"fields": fields}) from None
    if is_requester(account, task):
        raise Conflict(MSG_REQUESTER)

    with write_transaction():
        # Row lock on PostgreSQL (SQLite's write lock already serialises): two first
        # approvals at once must not both be stored as "first".
        task = decisions._lock_task(task)
        _check_may_decide(task)
        first = pending_approval(task)
        if first is None:
            pending = PendingApproval.create(task=task, approver=account.username, reason=reason,
                                             duration_unit=unit, duration_value=value)
            tickets.add_work_note(task, f"First approval by {account.username}: {reason}. A policy requires a "
                                        "second approver (not the first, not the requester) before it goes to EPM.",
                                  author=account.username, system=False)
            Task.update(updated_at=utcnow()).where(Task.id == task.id).execute()
            audit.record("first_approval", account, "ticket", task.number, {"reason": reason})
            return pending
        if first.approver.casefold() == account.username.casefold():
            raise Conflict(MSG_SAME_APPROVER)
    second_reason = f"{reason} (second approval; first by {first.approver}: {first.reason})"
    result = decisions.decide(task, account, contract.DECISION_APPROVED, second_reason[:4000], unit, value,
                              ticket_url)
    PendingApproval.update(status=APPROVAL_USED).where(PendingApproval.id == first.id).execute()
    return result
