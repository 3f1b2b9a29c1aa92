"""How each ticket's request ended, kept on the ticket: Task.outcome, outcome_by and outcome_at.

`of` says it from the ticket's JIT record, its latest broker decision and its expiry: EPM's final word first
(the later outcome it recorded, else its final decision), then the broker's decision and its delivery, then
expired (nobody decided in time, a decision EPM refused for good included: the request could be decided again,
and nobody did before it expired), else awaiting; the order the ticket list tells each ticket's decision in
(app/tickets/rows.py). Every write that changes what `of` says keeps the columns in its own transaction: the
EPM update path folds them into the UPDATE of the task it makes anyway (`update_task`), a decision taken
saves them with the task (`of`), its delivery's end calls `refresh`, the expiry job writes them with the
expiry (app/jobs/expiry.py). A new ticket awaits a decision by the columns' defaults.
So the ticket page lists a person's or an application's earlier requests from one range of an index
holding these columns (app/tickets/context.py), reading no JIT record and no decision.
"""
from peewee import Case, fn

from app import contract
from app.db import is_sqlite, update_row_unread, write_with_next
from app.models import Decision, JIT_MODELS, Task

COLUMNS = ("outcome", "outcome_by", "outcome_at")
AWAITING = (contract.OUTCOME_AWAITING, "", None)
# The JIT record's columns `of` reads: a write of any of them changes what the ticket keeps.
JIT_COLUMNS = ("epm_outcome", "decision_final", "final_decision", "final_decision_by", "final_decision_time")


def epm_word(jit):
    """(outcome, by, at) from EPM's final word on `jit`, or None while EPM has said none."""
    if jit.epm_outcome:
        return jit.epm_outcome, jit.final_decision_by or "", jit.final_decision_time
    if jit.decision_final and jit.final_decision:
        return jit.final_decision, jit.final_decision_by or "", jit.final_decision_time
    return None


def decision_words(decision, status):
    """The outcome of the broker's decision `decision` whose delivery is at `status`."""
    if status == contract.DELIVERY_DELIVERED:
        return decision
    if status == contract.DELIVERY_FAILED:
        return contract.OUTCOME_FAILED_TO_SEND
    return contract.OUTCOME_SENDING.format(decision=decision)


def expired(expired_at):
    """(outcome, by, at) of a request nobody decided before it expired at `expired_at`."""
    return contract.OUTCOME_EXPIRED, "", expired_at


def undecided_in_time(latest, expired_at):
    """Whether the request expired with no decision standing (expiry time `expired_at`, None while it has not
    expired; `latest`, the latest broker decision or None): nobody decided it, or EPM refused that decision for good
    and nobody decided it again before it expired."""
    return expired_at is not None and (latest is None or latest.status == contract.DELIVERY_FAILED)


def of(jit, latest, expired_at=None):
    """(outcome, decided by, decided at) of a ticket with JIT record `jit`, latest broker decision `latest`
    (None when nobody decided here) and expiry time `expired_at` (None while it has not expired)."""
    said = epm_word(jit)
    if said is not None:
        return said
    if latest is not None and not undecided_in_time(latest, expired_at):
        return decision_words(latest.decision, latest.status), latest.decided_by, latest.decided_at
    if expired_at is not None:
        return expired(expired_at)
    return AWAITING


def as_columns(words):
    """{column: value} of (outcome, by, at) `words`, for Task.update."""
    return dict(zip(COLUMNS, words))


def update_task(jit, **values):
    """UPDATE the task of `jit` with `values` and the outcome its JIT record now says, by send_with_next: the
    UPDATE of the task that a write of `jit` makes anyway, so keeping the outcome costs an EPM update no
    statement. EPM's word goes as values; while it has none, what the latest decision says, else the ticket's
    expiry, is worked out by this UPDATE itself, reading nothing before it."""
    said = epm_word(jit)
    if said is not None:
        update_row_unread(Task, jit.task_id, **values, **as_columns(said))
        return
    # A latest decision EPM refused on a request expired since says nothing (NULL): the expiry speaks.
    refused_then_expired = (Decision.status == contract.DELIVERY_FAILED) & Task.expired_at.is_null(False)
    words = Case(None, ((refused_then_expired, None),
                        (Decision.status == contract.DELIVERY_DELIVERED, Decision.decision),
                        (Decision.status == contract.DELIVERY_FAILED, contract.OUTCOME_FAILED_TO_SEND)),
                 Decision.decision.concat(contract.OUTCOME_SENDING.format(decision="")))
    by = Case(None, ((refused_then_expired, None),), Decision.decided_by)
    at = Case(None, ((refused_then_expired, None),), Decision.decided_at)
    undecided = Case(None, ((Task.expired_at.is_null(), contract.OUTCOME_AWAITING),), contract.OUTCOME_EXPIRED)
    write_with_next(Task.update(
        **values, outcome=fn.COALESCE(Decision.latest_of(jit.task_id, words), undecided),
        outcome_by=fn.COALESCE(Decision.latest_of(jit.task_id, by), ""),
        outcome_at=fn.COALESCE(Decision.latest_of(jit.task_id, at), Task.expired_at))
        .where(Task.id == jit.task_id))


def refresh(task):
    """Keep on `task` (a Task) what its JIT record, its latest decision and its expiry now say, in the caller's
    write transaction; returns (outcome, by, at).

    PostgreSQL: the JIT record is read holding its row lock, the lock an EPM update of the ticket takes first.
    An update committing meanwhile is then read once it has, rather than written over with what it replaced,
    and one starting meanwhile waits, then keeps its own word on the task."""
    model = JIT_MODELS[task.kind]
    query = model.select(*(getattr(model, name) for name in JIT_COLUMNS)).where(model.task == task.id)
    if not is_sqlite():
        query = query.for_update("FOR NO KEY UPDATE")
    words = of(query.get(), Decision.latest_of(task.id).first(), task.expired_at)
    update_row_unread(Task, task.id, **as_columns(words))
    return words
