"""Re-processing a stored webhook delivery through the intake's own code once its failure's cause is fixed.

A dry run does the same and rolls back; a replay that would change nothing leaves the row as it was,
and every real replay is audited. Replaying a delivery already applied is idempotent: an update older than
the ticket's state, or one already kept as a conflict, changes nothing and adds no note."""
import logging
import threading
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import peewee

from app import contract
from app.audit import service as audit
from app.db import is_unavailable, write_transaction
from app.errors import NotFound
from app.intake.service import StoredDelivery, apply_event, read_stored, waiting_updates
from app.models import IncomingRequest
from app.ops.history import said
from app.tickets import service as tickets

log = logging.getLogger(__name__)

AUDIT_ACTION = "incoming_request_replay"

# What a replay found, as `ReplayOutcome.result`.
CREATED = "created"
FINALIZED = "finalized"
UPDATED = "updated"    # EPM's newer state recorded: revoked, ended early, changed
OLDER = "older"        # an update older than the ticket's state: changes no decision (may tell what the newer was)
CONFLICT = "conflict"  # an update contradicting what EPM acknowledged: kept as a conflict
UNDECIDED = "undecided"  # an update without a decision before the first: noted, the ticket still awaits it
DUPLICATE = "duplicate"
WAITING = "waiting"
INVALID = "invalid"
FAILED = "failed"
PURGED = "purged"      # its request's ticket retention has deleted: replaying it makes no other
RESULTS = (CREATED, FINALIZED, UPDATED, OLDER, CONFLICT, UNDECIDED, DUPLICATE, WAITING, INVALID, FAILED, PURGED)
# A delivery in one of these states has been applied to its ticket already.
APPLIED = (contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE)


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

    @property
    def failed(self):
        """The replay did not do its work: its processing failed again, or the delivery is still not valid."""
        return self.result in (FAILED, INVALID)

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


@dataclass(frozen=True)
class _Before:
    """The stored row and its ticket as they were before the replay applied the row."""

    status: str
    closed: bool
    waiting: int
    ticket_state: dict  # _ticket_state of the row's ticket; None when there was none


# A JIT record's columns an update may change: its decision, EPM's outcome and a conflict kept aside.
_STATE_COLUMNS = tickets.DECISION_COLUMNS + ("decision_final", "epm_outcome", "conflict_decision",
                                             "conflict_decision_time", "conflict_end_time", "conflict_by",
                                             "conflict_at")


def _ticket_state(jit):
    return {name: getattr(jit, name) for name in _STATE_COLUMNS}


def _is_the_conflict(jit, values):
    """Whether an update the intake found a duplicate repeats the conflict kept on `jit` (not its decision)."""
    decision = values["final_decision"]
    return (jit.conflict_decision is not None and decision is not None
            and decision.casefold() != (jit.final_decision or "").casefold())


def _describe(incoming, event, fields, before, after, dry_run):
    """The outcome of apply_event on the stored row, in the words the replay page shows."""
    request_id = fields["request_id"]
    task = after.task if after.task_id else None
    base = dict(incoming_request=incoming.sys_id, dry_run=dry_run, status=after.status,
                ticket=task.number if task is not None else None)
    unchanged = {**base, "status": before.status, "changed": False}
    if after.status == contract.INCOMING_DUPLICATE and task is None:
        # A delivery that failed or waited, for a request whose ticket retention deleted meanwhile (the intake
        # says so in the row's error): settled as a duplicate, making no ticket.
        marked = "would mark it" if dry_run else "marked it"
        return ReplayOutcome(result=PURGED, changed=True, message=f"{marked} as a duplicate: {after.error}", **base)
    if after.status == contract.INCOMING_DUPLICATE:
        number = f" ({task.number})" if task is not None else ""
        conflict = not event.is_created and _is_the_conflict(task.jit_request, tickets.read_update(event, fields)[0])
        if conflict and before.status in APPLIED:
            return ReplayOutcome(result=CONFLICT, message=f"changed nothing: already kept as a conflict on "
                                                          f"{task.number} ({_conflict_text(task, event, fields)})",
                                 **unchanged)
        what = "a ticket" if event.is_created else "the same conflicting update" if conflict else \
            "the same final decision"
        if before.status in (contract.INCOMING_ERROR, contract.INCOMING_RECEIVED):
            # The delivery failed or waited, and EPM's resend (or another update) did the work
            # meanwhile: marking it a duplicate settles it, and changes no ticket.
            marked = "would mark it" if dry_run else "marked it"
            return ReplayOutcome(result=DUPLICATE, changed=True,
                                 message=f"{marked} as a duplicate: {what} for RequestId {request_id} "
                                         f"already exists{number}", **base)
        return ReplayOutcome(result=DUPLICATE,
                             message=f"duplicate: {what} for RequestId {request_id} already exists{number}; no change",
                             **unchanged)
    if after.status == contract.INCOMING_RECEIVED:
        return ReplayOutcome(result=WAITING,
                             message=f"still waiting: there is no ticket for RequestId {request_id} yet; no change",
                             **unchanged)
    if event.is_created:
        kind = contract.KIND_LABELS[event.kind]
        if dry_run:
            message = f"would create a ticket of type {task.ticket_type.label} for {kind} request {request_id}"
            base["ticket"] = None
        else:
            message = f"created {task.ticket_type.label} {task.number} for {kind} request {request_id}"
        applied = before.waiting - waiting_updates(event.kind, request_id).count()
        if applied:
            message += f", and {'apply' if dry_run else 'applied'} {applied} waiting update(s)"
        return ReplayOutcome(result=CREATED, changed=True, message=message, **base)
    return _describe_update(task, event, fields, before, dry_run, base, unchanged)


def _conflict_text(task, event, fields):
    return f"EPM's update says {_said(event, fields)}; the ticket keeps {task.jit_request.final_decision}"


def _said(event, fields):
    """What an update said (history.said), naming its Decision text when that names neither Approved nor Denied,
    as the work note and the processing history do."""
    return said(*tickets.read_update(event, fields))


def _undecided(event, fields):
    """An update that decides nothing, as a person reads it: its unreadable Decision text named, if it had one."""
    unreadable = tickets.read_update(event, fields)[1]
    return ("an update without a decision" if unreadable is None else
            f'an update whose Decision "{tickets.shown_decision(unreadable)}" is neither Approved nor Denied')


def _describe_update(task, event, fields, before, dry_run, base, unchanged):
    """What a processed update did to its ticket (tickets.record_update), read from the ticket before and after:
    an update already applied that is older than the ticket's state or a conflict again changes nothing; an older
    one arriving late may tell what the newer one was (Revoked), changing no decision."""
    jit = task.jit_request
    after = _ticket_state(jit)
    applied = before.status in APPLIED
    if after["conflict_at"] != before.ticket_state["conflict_at"]:
        if applied:
            return ReplayOutcome(result=CONFLICT, message=f"changed nothing: already kept as a conflict on "
                                                          f"{task.number} ({_conflict_text(task, event, fields)})",
                                 **unchanged)
        return ReplayOutcome(result=CONFLICT, changed=True,
                             message=f"{'would keep' if dry_run else 'kept'} it as a conflict on {task.number}: "
                                     f"{_conflict_text(task, event, fields)}", **base)
    if not jit.decision_final:
        if applied:
            return ReplayOutcome(result=UNDECIDED, message=f"changed nothing: {_undecided(event, fields)}, noted "
                                                           f"already; {task.number} awaits EPM's decision", **unchanged)
        return ReplayOutcome(result=UNDECIDED, changed=True,
                             message=f"{'would note' if dry_run else 'noted'} {_undecided(event, fields)} on "
                                     f"{task.number}; it awaits EPM's decision", **base)
    if not before.ticket_state["decision_final"]:
        decision = jit.final_decision or "no decision given"
        if jit.epm_outcome:
            decision += f" ({jit.epm_outcome})"
        message = f"would finalize {task.number} with {decision}" if dry_run else \
            f"finalized {task.number} with {decision}"
        if task.closed_at is not None and not before.closed:
            message += " and close it (auto-close)" if dry_run else " and closed it (auto-close)"
        return ReplayOutcome(result=FINALIZED, changed=True, message=message, **base)
    decided = [name for name in tickets.DECISION_COLUMNS if after[name] != before.ticket_state[name]]
    if after != before.ticket_state and not decided:
        # An older update changes no decision, only what the ticket reads: what it tells of the newer one
        # (tickets.older_update_outcome), as the webhook's late arrival does.
        reads = "would read" if dry_run else "now reads"
        return ReplayOutcome(result=OLDER, changed=True,
                             message=f"{'would record' if dry_run else 'recorded'} EPM's older update on "
                                     f"{task.number}, after the newer one: it {reads} {jit.epm_outcome}, as in "
                                     f"order ({_said(event, fields)})", **base)
    if after != before.ticket_state:
        state = jit.epm_outcome or jit.final_decision or "no decision given"
        return ReplayOutcome(result=UPDATED, changed=True,
                             message=f"{'would record' if dry_run else 'recorded'} EPM's newer state on "
                                     f"{task.number}: {state} ({_said(event, fields)})",
                             **base)
    older = f"older than the recorded state; {task.number} keeps {jit.epm_outcome or jit.final_decision}"
    if applied:
        return ReplayOutcome(result=OLDER, message=f"changed nothing: {older}", **unchanged)
    return ReplayOutcome(result=OLDER, changed=True,
                         message=f"{'would mark' if dry_run else 'marked'} it processed, changing nothing: {older}",
                         **base)


def _unchanged(incoming, dry_run, result, message):
    return ReplayOutcome(incoming_request=incoming.sys_id, dry_run=dry_run, result=result, message=message,
                         changed=False, status=incoming.status,
                         ticket=incoming.task.number if incoming.task_id else None)


def _apply(incoming, event, fields, actor, dry_run, source_address):
    with write_transaction():
        row = IncomingRequest.get_by_id(incoming.id)
        jit = tickets.find_jit_request(event.kind, fields["request_id"])
        before = _Before(
            status=row.status, closed=jit is not None and jit.task.closed_at is not None,
            waiting=waiting_updates(event.kind, fields["request_id"]).count() if event.is_created else 0,
            ticket_state=None if jit is None else _ticket_state(jit))
        after = apply_event(StoredDelivery(row), event, fields)
        outcome = _describe(incoming, event, fields, before, after, dry_run)
        if dry_run or not outcome.changed:
            raise _RollBack(outcome)
        if after.task_id is not None:
            tickets.add_work_note(after.task, f"Stored delivery {row.sys_id} ({event.name}) replayed by "
                                              f"{getattr(actor, 'username', actor) or 'an admin'}: {outcome.message}.")
        audit.record(AUDIT_ACTION, actor, "incoming_request", row.sys_id, outcome.as_dict(), source_address)
        return outcome


@contextmanager
def _ticket_log_held(held):
    """Hold what the ticket service logs on this thread (a conflict's WARNING) in `held` while a replay may still
    roll back: a dry run, or a replay changing nothing, must not warn ops of a conflict it did not keep."""
    thread = threading.get_ident()

    def hold(record):
        if record.thread != thread:
            return True
        held.append(record)
        return False

    tickets.log.addFilter(hold)
    try:
        yield
    finally:
        tickets.log.removeFilter(hold)


def replay(incoming, actor=None, dry_run=False, source_address=None):
    """Re-run the intake on a stored delivery (row or sys_id); returns a ReplayOutcome, audited but for a dry run."""
    if not isinstance(incoming, IncomingRequest):
        incoming = find_incoming_request(incoming)
    event, fields = read_stored(incoming)
    if event is None:
        outcome = _unchanged(incoming, dry_run, INVALID, f"still not a valid delivery: {fields}; no change")
    elif incoming.status in APPLIED and incoming.task_id is None:
        # Its ticket was applied, then deleted by retention (app/jobs/retention.py): applied again, a created
        # event would open a new ticket EPM already decided, and an update would wait for one forever.
        outcome = _unchanged(incoming, dry_run, PURGED, "changed nothing: this delivery was applied to a ticket "
                                                        "that retention has since deleted")
    else:
        held = []
        try:
            with _ticket_log_held(held):
                outcome = _apply(incoming, event, fields, actor, dry_run, source_address)
            for record in held:
                tickets.log.handle(record)
        except _RollBack as rolled_back:
            outcome = rolled_back.outcome
        except peewee.IntegrityError:
            outcome = _unchanged(incoming, dry_run, FAILED, "another delivery for this RequestId was being "
                                                            "processed at the same moment; try again")
        except Exception as error:  # noqa: BLE001 - the processing itself failed: report it, change nothing
            if is_unavailable(error):
                raise
            log.exception("replay of incoming request %s failed", incoming.sys_id)
            outcome = _unchanged(incoming, dry_run, FAILED, f"processing failed: {error.__class__.__name__}: "
                                                            f"{str(error)[:500]}; no change")
    if not dry_run and not outcome.changed:
        audit.record(AUDIT_ACTION, actor, "incoming_request", incoming.sys_id, outcome.as_dict(), source_address)
    log.info("replay%s of incoming request %s: %s", " (dry run)" if dry_run else "", incoming.sys_id, outcome.message,
             extra={"ticket": outcome.ticket})
    return outcome
