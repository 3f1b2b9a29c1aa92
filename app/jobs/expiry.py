"""Expiry: a request nobody decided within `[tickets] expire_pending_hours` of its arrival is marked expired.

EPM stops waiting for an answer long before an approver comes back to it; an expired ticket leaves the
"Awaiting decision" list, says why in its history, reads Expired where earlier requests are listed
(app/tickets/outcome.py), and refuses a decision (app/decisions/service.py).
Each batch is its own short transaction; a decision taken meanwhile wins (its ticket is left alone)."""
import logging

from flask import current_app
from peewee import Case

from app import contract
from app.db import is_sqlite, write_transaction
from app.decisions.models import APPROVAL_PENDING, APPROVAL_VOID, PendingApproval
from app.models import Configuration, Task, utcnow
from app.tickets import service as tickets
from app.tickets.rows import expiry_cutoff, undecided_condition

log = logging.getLogger(__name__)

BATCH_SIZE = 200


def _hours_text(hours):
    return "1 hour" if hours == 1 else f"{hours} hours"


def expiry_note(hours):
    """The history line an expired ticket gets."""
    return (f"Expired: no decision within {_hours_text(hours)} of the request. "
            "It no longer awaits a decision; the user can ask again from the endpoint.")


def expire_pending(hours=None, now=None):
    """Mark every request undecided for longer than `hours` (the setting by default) expired; returns how many."""
    hours = current_app.extensions["settings"].expire_pending_hours if hours is None else hours
    now = now or utcnow()
    cutoff = expiry_cutoff(hours, now)
    if cutoff is None:
        return 0
    labels = Configuration.default().active_state_labels
    expired = 0
    while True:
        due = undecided_condition(labels) & (Task.opened_at < cutoff)
        ids = [task_id for task_id, in Task.select(Task.id).where(due).order_by(Task.opened_at, Task.id)
               .limit(BATCH_SIZE).tuples()]
        if not ids:
            break
        expired += _expire(ids, due, now, hours)
        if len(ids) < BATCH_SIZE:
            break
    if expired:
        log.info("expiry: %d request(s) undecided for %s marked expired", expired, _hours_text(hours))
    return expired


def _expire(ids, due, now, hours):
    with write_transaction():
        if not is_sqlite():
            # Wait for a decision being taken on one of them; the update below then sees it and skips its ticket.
            list(Task.select(Task.id).where(Task.id.in_(ids)).for_update())
        # How the request ended, kept on the ticket by this UPDATE (app/tickets/outcome.py): an undecided one reads
        # Expired, and so does one whose decision EPM refused for good (nobody decided it again in time).
        undecided = Task.outcome.in_((contract.OUTCOME_AWAITING, contract.OUTCOME_FAILED_TO_SEND))
        Task.update(expired_at=now, updated_at=now,
                    outcome=Case(None, ((undecided, contract.OUTCOME_EXPIRED),), Task.outcome),
                    outcome_by=Case(None, ((undecided, ""),), Task.outcome_by),
                    outcome_at=Case(None, ((undecided, Task.outcome_at.to_value(now)),), Task.outcome_at),
                    ).where(Task.id.in_(ids) & due).execute()
        marked = list(Task.select().where(Task.id.in_(ids) & (Task.expired_at == now)))
        for task in marked:
            tickets.add_work_note(task, expiry_note(hours))
        # A first approval waiting for a second one counts for nothing once its request expired.
        PendingApproval.update(status=APPROVAL_VOID).where(PendingApproval.task.in_([task.id for task in marked]),
                                                           PendingApproval.status == APPROVAL_PENDING).execute()
    return len(marked)
