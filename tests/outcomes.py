"""The outcome a ticket keeps (Task.outcome, outcome_by, outcome_at: app/tickets/outcome.py) checked against
one worked out afresh from its JIT record and its decisions, spelled out here as the ticket page told it
before the outcome was kept: EPM's final word first, then the broker's latest decision (unless EPM refused it
and the request expired since), then its expiry, else awaiting (the order the ticket list tells a ticket's
decision in)."""
from app import contract
from app.models import JIT_MODELS, Decision, Task


def kept_outcome(task):
    """(outcome, by, at) as kept on `task` (a Task or its id), read now."""
    task_id = getattr(task, "id", task)
    return Task.select(Task.outcome, Task.outcome_by, Task.outcome_at).where(Task.id == task_id).tuples().get()


def fresh_outcome(task):
    """(outcome, by, at) of `task` (a Task or its id) from its JIT record and its decisions, read now."""
    task = Task.get_by_id(getattr(task, "id", task))
    model = JIT_MODELS[task.kind]
    jit = model.get(model.task == task.id)
    if jit.epm_outcome:
        return jit.epm_outcome, jit.final_decision_by or "", jit.final_decision_time
    if jit.decision_final and jit.final_decision:
        return jit.final_decision, jit.final_decision_by or "", jit.final_decision_time
    decisions = list(Decision.select().where(Decision.task == task.id))
    if not decisions and task.expired_at is not None:
        return contract.OUTCOME_EXPIRED, "", task.expired_at
    if not decisions:
        return contract.OUTCOME_AWAITING, "", None
    latest = max(decisions, key=lambda decision: (decision.decided_at, decision.id))
    if latest.status == contract.DELIVERY_FAILED and task.expired_at is not None:
        return contract.OUTCOME_EXPIRED, "", task.expired_at  # refused, then nobody decided it again in time
    words = {contract.DELIVERY_DELIVERED: latest.decision, contract.DELIVERY_FAILED: "Failed to send"}.get(
        latest.status, f"{latest.decision} - sending to EPM")
    return words, latest.decided_by, latest.decided_at


def assert_outcome_kept(task):
    """The outcome kept on `task` is the one its JIT record and decisions say now; returns it."""
    kept = kept_outcome(task)
    assert kept == fresh_outcome(task), "the ticket keeps the outcome its JIT record and decisions say"
    return kept
