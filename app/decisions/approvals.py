"""Two-person approval: when the policies require it, the first approval waits for a second approver.

Neither approver may be the requester; a denial needs one person. Nobody approves while the policies
are being evaluated, or wait for the ticket to take a decision again (`Task.approvals_required` is None until
they have run): nobody knows yet if one is enough."""
from app import contract
from app.audit import service as audit
from app.auth import step_up
from app.db import write_transaction
from app.decisions import service as decisions
from app.decisions.models import APPROVAL_PENDING, PendingApproval
from app.decisions.rules import clean_decision
from app.errors import Conflict
from app.models import Task, utcnow
from app.tickets import service as tickets

MSG_REQUESTER = "The requester cannot approve their own request"
MSG_SAME_APPROVER = "You gave the first approval; a different approver must give the second"
MSG_EVALUATING = "The policies are still being evaluated for this request; approve it again shortly"


def pending_approval(task):
    return (PendingApproval.select()
            .where(PendingApproval.task == task, PendingApproval.status == APPROVAL_PENDING)
            .order_by(PendingApproval.id).first())


def submit_decision(task, account, decision, reason, duration_unit=None, duration_value=None, ticket_url="",
                    via=None, send_now=True, authenticated_at=None):
    """Decide, or record a first approval; returns the Decision, or the PendingApproval when one is recorded.
    `via` and `send_now` as for decisions.decide; `authenticated_at`, when the identity provider last
    authenticated the person (seconds since the epoch), for the approvals that need it fresh (app/auth/step_up.py)."""
    is_approval = str(decision or "").strip().capitalize() == contract.DECISION_APPROVED
    if is_approval:
        step_up.require_fresh(account, task, authenticated_at)
    # Read now, not from `task`: the policies may have finished since it was read.
    required = Task.select(Task.approvals_required).where(Task.id == task.id).scalar()
    if is_approval and required is None:
        # Queued, running, or waiting for the ticket to take a decision again: the rules may yet require two
        # approvers. A ticket that takes no decision now (inactive, say) says so rather than that they run.
        decisions.check_may_decide(task)
        raise Conflict(MSG_EVALUATING)
    if not (is_approval and required >= 2):
        return decisions.decide(task, account, decision, reason, duration_unit, duration_value, ticket_url, via,
                                send_now)
    _decision, reason, unit, value = clean_decision(decision, reason, duration_unit, duration_value)
    if decisions.is_own_request(account, task):
        # A policy requiring two approvers refuses the requester whatever allow_self_approval says.
        audit.record(decisions.SELF_APPROVAL_REFUSED, account, "ticket", task.number,
                     {"requester": task.requester, "request_id": task.request_id, "policy": "two approvers"})
        raise Conflict(MSG_REQUESTER)

    with write_transaction():
        # Row lock on PostgreSQL (SQLite's write lock already serialises): two first
        # approvals at once must not both be stored as "first".
        task = decisions.lock_task(task)
        jit = decisions.check_may_decide(task)  # the refusals `decide` gives, before a first approval is stored
        first = pending_approval(task)
        if first is None:
            pending = PendingApproval.create(task=task, approver=account.username, reason=reason,
                                             duration_unit=unit, duration_value=value)
            tickets.add_work_note(task, f"First approval by {account.username}{f' via {via}' if via else ''}: "
                                        f"{reason}. A policy requires a "
                                        "second approver (not the first, not the requester) before it goes to EPM.",
                                  author=account.username, system=False)
            Task.update(updated_at=utcnow()).where(Task.id == task.id).execute()
            audit.record("first_approval", account, "ticket", task.number,
                         {"reason": reason, **({"via": via} if via else {})})
            return pending
        if first.approver.casefold() == account.username.casefold():
            raise Conflict(MSG_SAME_APPROVER)
        # Each approver's reason was held to the limit on its own; EPM's message and the stored reason carry both
        # whole (neither has a length limit), so nothing either approver wrote is cut.
        record = decisions.record_decision(task, jit, account, contract.DECISION_APPROVED,
                                           second_approval_reason(reason, first), unit, value, ticket_url, via,
                                           send_now, second_to=first)
    if not send_now:
        return record
    return decisions.deliver_claimed(record, jit=jit)


def second_approval_reason(reason, first):
    """The reason a second approval goes to EPM with: the second approver's, then the first's."""
    return f"{reason} (second approval; first by {first.approver}: {first.reason})"
