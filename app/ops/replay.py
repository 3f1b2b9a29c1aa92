"""Re-processing a stored webhook delivery through the intake's own code once its failure's cause is fixed.

A dry run does the same and rolls back; a replay that would change nothing leaves the row as it was,
and every real replay is audited."""
import logging
from dataclasses import asdict, dataclass

import peewee

from app import contract
from app.audit import service as audit
from app.db import UNAVAILABLE_ERRORS, write_transaction
from app.errors import NotFound
from app.intake.service import StoredDelivery, apply_event, read_stored, waiting_updates
from app.models import IncomingRequest
from app.tickets import service as tickets

log = logging.getLogger(__name__)

AUDIT_ACTION = "incoming_request_replay"

# What a replay found, as `ReplayOutcome.result`.
CREATED = "created"
FINALIZED = "finalized"
DUPLICATE = "duplicate"
WAITING = "waiting"
INVALID = "invalid"
FAILED = "failed"


@dataclass(frozen=True)
class ReplayOutcome:
    """What a replay did (or, for a dry run, would do) to one stored delivery."""

    incoming_request: str
    dry_run: bool
    result: str
    message: str
    changed: bool
    status: str
    ticket: str = None

    def as_dict(self):
        return asdict(self)


class _RollBack(Exception):
    def __init__(self, outcome):
        super().__init__(outcome.message)
        self.outcome = outcome


def find_incoming_request(sys_id):
    incoming = IncomingRequest.get_or_none(IncomingRequest.sys_id == str(sys_id).strip().lower())
    if incoming is None:
        raise NotFound(f"No incoming request {sys_id}")
    return incoming


def _describe(incoming, event, fields, status_before, closed_before, after, waiting_before, dry_run):
    """The outcome of apply_event on the stored row, in the words the replay page shows."""
    would = "would " if dry_run else ""
    request_id = fields["request_id"]
    task = after.task if after.task_id else None
    base = dict(incoming_request=incoming.sys_id, dry_run=dry_run, status=after.status,
                ticket=task.number if task is not None else None)
    if after.status == contract.INCOMING_DUPLICATE:
        number = f" ({task.number})" if task is not None else ""
        what = "a ticket" if event.is_created else "the same final decision"
        if status_before in (contract.INCOMING_ERROR, contract.INCOMING_RECEIVED):
            # The delivery failed or waited, and EPM's resend (or another update) did the work
            # meanwhile: marking it a duplicate settles it, and changes no ticket.
            marked = "would mark it" if dry_run else "marked it"
            return ReplayOutcome(result=DUPLICATE, changed=True,
                                 message=f"{marked} as a duplicate: {what} for RequestId {request_id} "
                                         f"already exists{number}", **base)
        return ReplayOutcome(result=DUPLICATE, changed=False,
                             message=f"duplicate: {what} for RequestId {request_id} already exists{number}; no change",
                             **{**base, "status": status_before})
    if after.status == contract.INCOMING_RECEIVED:
        return ReplayOutcome(result=WAITING, changed=False,
                             message=f"still waiting: there is no ticket for RequestId {request_id} yet; no change",
                             **{**base, "status": status_before})
    if event.is_created:
        kind = contract.KIND_LABELS[event.kind]
        if dry_run:
            message = f"would create a ticket of type {task.ticket_type.label} for {kind} request {request_id}"
            base["ticket"] = None
        else:
            message = f"created {task.ticket_type.label} {task.number} for {kind} request {request_id}"
        applied = waiting_before - waiting_updates(event.kind, request_id).count()
        if applied:
            message += f", and {'apply' if dry_run else 'applied'} {applied} waiting update(s)"
        return ReplayOutcome(result=CREATED, changed=True, message=message, **base)
    jit = task.jit_request
    message = f"{would}finalize {task.number} with {jit.final_decision or 'no decision given'}" if dry_run else \
        f"finalized {task.number} with {jit.final_decision or 'no decision given'}"
    if task.closed_at is not None and not closed_before:
        message += " and close it (auto-close)" if dry_run else " and closed it (auto-close)"
    return ReplayOutcome(result=FINALIZED, changed=True, message=message, **base)


def _unchanged(incoming, dry_run, result, message):
    return ReplayOutcome(incoming_request=incoming.sys_id, dry_run=dry_run, result=result, message=message,
                         changed=False, status=incoming.status, ticket=incoming.task.number if incoming.task_id else None)


def _apply(incoming, event, fields, actor, dry_run, source_address):
    with write_transaction():
        row = IncomingRequest.get_by_id(incoming.id)
        status_before = row.status
        jit = tickets.find_jit_request(event.kind, fields["request_id"])
        closed_before = jit is not None and jit.task.closed_at is not None
        waiting_before = waiting_updates(event.kind, fields["request_id"]).count() if event.is_created else 0
        after = apply_event(StoredDelivery(row), event, fields)
        outcome = _describe(incoming, event, fields, status_before, closed_before, after, waiting_before, dry_run)
        if dry_run or not outcome.changed:
            raise _RollBack(outcome)
        tickets.add_work_note(after.task, f"Stored delivery {row.sys_id} ({event.name}) replayed by "
                                          f"{getattr(actor, 'username', actor) or 'an admin'}: {outcome.message}.")
        audit.record(AUDIT_ACTION, actor, "incoming_request", row.sys_id, outcome.as_dict(), source_address)
        return outcome


def replay(incoming, actor=None, dry_run=False, source_address=None):
    """Re-run the intake on a stored delivery (row or sys_id); returns a ReplayOutcome, audited but for a dry run."""
    if not isinstance(incoming, IncomingRequest):
        incoming = find_incoming_request(incoming)
    event, fields = read_stored(incoming)
    if event is None:
        outcome = _unchanged(incoming, dry_run, INVALID, f"still not a valid delivery: {fields}; no change")
    else:
        try:
            outcome = _apply(incoming, event, fields, actor, dry_run, source_address)
        except _RollBack as rolled_back:
            outcome = rolled_back.outcome
        except peewee.IntegrityError:
            outcome = _unchanged(incoming, dry_run, FAILED, "another delivery for this RequestId was being "
                                                            "processed at the same moment; try again")
        except UNAVAILABLE_ERRORS:
            raise
        except Exception as error:  # noqa: BLE001 - the processing itself failed: report it, change nothing
            log.exception("replay of incoming request %s failed", incoming.sys_id)
            outcome = _unchanged(incoming, dry_run, FAILED, f"processing failed: {error.__class__.__name__}: "
                                                            f"{str(error)[:500]}; no change")
    if not dry_run and not outcome.changed:
        audit.record(AUDIT_ACTION, actor, "incoming_request", incoming.sys_id, outcome.as_dict(), source_address)
    log.info("replay%s of incoming request %s: %s", " (dry run)" if dry_run else "", incoming.sys_id, outcome.message,
             extra={"ticket": outcome.ticket})
    return outcome
