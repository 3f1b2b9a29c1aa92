"""The broker's own tickets seen as an ITSM sees them, for the policy checks and the ServiceNow Table API subset."""
from app import contract
from app.itsm.base import APPROVED, REJECTED, REQUESTED, RemoteTicket
from app.models import Decision, Task

BROKER_SOURCE = "broker"


def approval_of(task, jit=None):
    """approved / rejected / requested, from EPM's final decision, else the broker's latest decision."""
    jit = jit or task.jit_request
    if jit.decision_final and jit.final_decision:
        return APPROVED if jit.final_decision.strip().casefold() == "approved" else REJECTED
    latest = (task.decisions.where(Decision.status != contract.DELIVERY_FAILED)
              .order_by(Decision.decided_at.desc(), Decision.id.desc()).first())
    if latest is not None:
        return APPROVED if latest.decision == contract.DECISION_APPROVED else REJECTED
    return REQUESTED


def broker_ticket(number):
    """The broker's ticket `number` as a RemoteTicket, or None."""
    task = Task.get_or_none(Task.number == number.upper())
    if task is None:
        return None
    jit = task.jit_request
    return RemoteTicket(
        number=task.number, state=task.state_label, approval=approval_of(task, jit),
        window_start=jit.final_start_time, window_end=jit.final_end_time, requester=task.requester,
        source=BROKER_SOURCE,
    )
