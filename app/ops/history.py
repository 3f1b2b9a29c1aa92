"""A ticket's processing history, in order, from what the broker stored: deliveries, ticket, notes,
decisions and calls to EPM. Each update EPM sent is a step saying what that update said and what it did."""
from dataclasses import dataclass, field
from datetime import datetime

from marshmallow import ValidationError

from app import contract
from app.epm import records
from app.intake.epm_records import decision_event
from app.intake.service import read_stored
from app.models import Configuration, Decision, IncomingRequest, WorkNote
from app.logs.models import OutboundCall
from app.tickets import service as tickets

# The kinds of step, in the order two steps at the same instant are shown.
RECEIVED = "delivery received"
CREATED = "ticket created"
DECISION = "decision recorded"
DELIVERY_ATTEMPT = "delivery attempt"
DELIVERED = "decision delivered"
FINALIZED = "finalized by EPM"
UPDATED = "updated by EPM"                # a newer state: revoked, ended early, changed
OLDER = "older update from EPM"           # after a newer one: changed no decision (it may tell what that was)
CONFLICT = "conflicting update from EPM"  # contradicted what EPM acknowledged: the ticket kept its decision
UNDECIDED = "update from EPM without a decision"  # before the first decision: the ticket kept awaiting it
CLOSED = "closed"
NOTE = "work note"
KIND_ORDER = (RECEIVED, CREATED, DECISION, DELIVERY_ATTEMPT, DELIVERED, FINALIZED, UPDATED, OLDER, CONFLICT,
              UNDECIDED, CLOSED, NOTE)
# The step of each thing an update did (tickets.record_update's UPDATE_*).
UPDATE_KINDS = {tickets.UPDATE_FIRST: FINALIZED, tickets.UPDATE_NEWER: UPDATED, tickets.UPDATE_OLDER: OLDER,
                tickets.UPDATE_DUPLICATE: OLDER, tickets.UPDATE_CONFLICT: CONFLICT,
                tickets.UPDATE_UNDECIDED: UNDECIDED}


@dataclass(frozen=True)
class HistoryEvent:
    at: datetime
    kind: str
    summary: str
    detail: dict = field(default_factory=dict)
    sequence: int = 0  # keeps rows of one kind in the order they were stored
    order_at: datetime = None  # where the step belongs when that is not when it was stamped

    @property
    def sort_key(self):
        return self.order_at or self.at, KIND_ORDER.index(self.kind), self.sequence


def _deliveries(task):
    events, updates = [], []
    incoming_rows = (IncomingRequest.select().where(IncomingRequest.task == task)
                     .order_by(IncomingRequest.received_at, IncomingRequest.id))
    for incoming in incoming_rows:
        detail = {"incoming_request": incoming.sys_id, "event_type": incoming.event_type, "status": incoming.status}
        events.append(HistoryEvent(incoming.received_at, RECEIVED,
                                   f"{incoming.event_type} received from EPM ({incoming.status})", detail, incoming.id))
        event = contract.EVENT_TYPES.get(incoming.event_type or "")
        if (event is not None and not event.is_created and incoming.status == contract.INCOMING_PROCESSED
                and incoming.processed_at is not None):
            updates.append(incoming)
    return events + _update_steps(task, updates)


def _when(moment):
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def said(values, unreadable=None):
    """`Approved by jchen at 2026-11-20 15:12:02 UTC`: what one update said (the columns of tickets.read_update), naming
    its Decision text when that was `unreadable` (read_update's too)."""
    decision = values["final_decision"] or "no decision"
    if unreadable is not None:
        decision = f'{decision} (Decision "{tickets.shown_decision(unreadable)}", neither Approved nor Denied)'
    text = f"{decision} by {values['final_decision_by'] or 'unknown'}"
    return text + (f" at {_when(values['final_decision_time'])}" if values["final_decision_time"] else "")


def _iso(moment):
    return None if moment is None else moment.isoformat()


def _acknowledged_at(task, moment):
    """The broker's latest decision on `task` EPM had acknowledged by `moment`, or None."""
    return (Decision.select().where(Decision.task == task, Decision.status == contract.DELIVERY_DELIVERED,
                                    Decision.delivered_at <= moment)
            .order_by(Decision.delivered_at.desc(), Decision.id.desc()).first())


def _kept(recorded, outcome):
    return outcome or recorded["final_decision"] or "its decision"


def _what_it_did(task, kind, values, recorded, outcome, processed_at, unreadable=None):
    """(UPDATE_*, summary, recorded, outcome) for one update applied on top of the `recorded` decision columns
    (None before the first) and EPM `outcome`, by the rules tickets.record_update applies (contract/epm.md 5.3:
    tickets.first_update, later_state, later_outcome, older_update_outcome); the last two are the ticket's state
    after it. `unreadable` is the update's Decision text naming neither Approved nor Denied, if it had one."""
    own = said(values, unreadable)
    if recorded is None and values["final_decision"] is None:
        what = ("without a decision" if unreadable is None else
                f'whose Decision "{tickets.shown_decision(unreadable)}" is neither Approved nor Denied')
        return (tickets.UPDATE_UNDECIDED, f"EPM sent an update {what}: {said(values)}; the ticket kept awaiting "
                                          "EPM's final decision", None, outcome)
    if recorded is None:
        acknowledged = _acknowledged_at(task, processed_at)
        effect, first_outcome = tickets.first_update(kind, values, acknowledged)
        if effect == tickets.UPDATE_CONFLICT:
            kept = {**dict.fromkeys(tickets.DECISION_COLUMNS), "final_decision": contract.DECISION_DENIED,
                    "final_decision_by": acknowledged.decided_by}
            return (tickets.UPDATE_CONFLICT, f"EPM sent a conflicting update: {own}, contradicting the Denied "
                                             f"decision by {acknowledged.decided_by} that EPM acknowledged; "
                                             f"the ticket kept Denied", kept, None)
        if first_outcome == contract.EPM_OUTCOME_REVOKED:
            return (tickets.UPDATE_FIRST, f"EPM revoked the approval by {acknowledged.decided_by} it had "
                                          f"acknowledged: {own}", values, first_outcome)
        return tickets.UPDATE_FIRST, f"EPM finalized the decision: {own}", values, None
    # What the update leaves out is what the ticket held, as record_update reads it.
    filled, effect = tickets.later_state(recorded, values)
    if effect == tickets.UPDATE_DUPLICATE:
        return (tickets.UPDATE_DUPLICATE, f"EPM re-sent the state the ticket held: {own}; it changed nothing, the "
                                          f"ticket kept {_kept(recorded, outcome)}", recorded, outcome)
    if effect == tickets.UPDATE_OLDER:
        told = tickets.older_update_outcome(kind, filled, recorded, outcome)
        if told != outcome:
            return (tickets.UPDATE_OLDER, f"EPM sent an older update after the newer one: {own}; the ticket "
                                          f"read {told}, as it would have in order", recorded, told)
        return (tickets.UPDATE_OLDER, f"EPM re-sent an older update: {own}; it changed nothing, the ticket kept "
                                      f"{_kept(recorded, outcome)}", recorded, outcome)
    if effect == tickets.UPDATE_CONFLICT:
        return (tickets.UPDATE_CONFLICT, f"EPM sent a conflicting update: {own}, contradicting its final decision "
                                         f"Denied; the ticket kept {_kept(recorded, outcome)}", recorded, outcome)
    later = tickets.later_outcome(kind, recorded, filled, outcome)
    if later != outcome and later == contract.EPM_OUTCOME_REVOKED:
        summary = f"EPM revoked the approval: {own}"
    elif later != outcome and later == contract.EPM_OUTCOME_ENDED_EARLY:
        summary = f"EPM ended the session early: {own}, the session ending at {_when(filled['final_end_time'])}"
    elif later != outcome:
        summary = f"EPM changed its final decision: {own}"
    else:
        summary = f"EPM updated its final decision: {own}"
    return tickets.UPDATE_NEWER, summary, filled, later


def _read_from_epm(task):
    """(when, decision columns) of the final decision EPM's record of the request showed when the broker last read
    it (reconciliation, Check with EPM, a decision EPM had taken otherwise: intake.epm_records.finalize_from_record
    keeps that record on the ticket before recording what it shows), read as it was then; None when no record
    with a usable decision was read."""
    jit = task.jit_request
    if jit.epm_checked_at is None or not isinstance(jit.epm_record, dict):
        return None
    record = records.read_record(task.kind, jit.epm_record, records.StatusMapping.of(Configuration.default()))
    try:
        update = decision_event(record, jit.request_id)
    except ValidationError:
        return None  # unusable: nothing was recorded from it
    return None if update is None else (jit.epm_checked_at, tickets.read_update(*update)[0])


def _recorded_from_epm(task, values, recorded, outcome, when):
    """(recorded, outcome) once the decision columns `values` read from EPM's record at `when` are applied as
    finalize_from_record applies them, by the webhook's rule (tickets.later_effect): a state the ticket holds
    changes nothing, an older one can tell what the newer was (an approval read after its revocation: Revoked)."""
    return _what_it_did(task, task.kind, values, recorded, outcome, when)[2:]


def _update_steps(task, updates):
    """One step per processed update delivery, saying what that delivery said (read from its stored body) and
    what it did, worked out again in the order the deliveries were processed. A final decision recorded from
    EPM's record rather than delivered (its lost update reconciled, say) takes its place in that order: the
    updates after it are worked out on top of it, as the ticket recorded them."""
    inputs = [(incoming.processed_at, incoming.id, incoming, None) for incoming in updates]
    read = _read_from_epm(task) if updates else None
    if read is not None:
        inputs.append((read[0], 0, None, read[1]))
    steps, recorded, outcome = [], None, None
    for when, _, incoming, read_values in sorted(inputs, key=lambda entry: entry[:2]):
        if incoming is None:
            recorded, outcome = _recorded_from_epm(task, read_values, recorded, outcome, when)
            continue
        detail = {"incoming_request": incoming.sys_id, "event_type": incoming.event_type, "status": incoming.status}
        # processed_at is stamped after the update's work notes; the step belongs right after the
        # update's arrival (or the ticket's creation, for an update that waited).
        place = dict(sequence=incoming.id, order_at=max(incoming.received_at, task.opened_at))
        event, fields = read_stored(incoming)
        if event is None:
            steps.append(HistoryEvent(incoming.processed_at, UPDATED, f"EPM's update, no longer readable: {fields}",
                                      detail, **place))
            continue
        values, unreadable = tickets.read_update(event, fields)
        what, summary, recorded, outcome = _what_it_did(task, event.kind, values, recorded, outcome,
                                                        incoming.processed_at, unreadable)
        detail.update(update=what, decision=values["final_decision"], performed_by=values["final_decision_by"],
                      decision_time=_iso(values["final_decision_time"]), end_time=_iso(values["final_end_time"]),
                      outcome=outcome)
        if unreadable is not None:
            detail["unreadable_decision"] = tickets.shown_decision(unreadable)
        steps.append(HistoryEvent(incoming.processed_at, UPDATE_KINDS[what], summary, detail, **place))
    return steps


def _decisions(task):
    events = []
    decisions = list(Decision.select().where(Decision.task == task).order_by(Decision.decided_at, Decision.id))
    for decision in decisions:
        detail = {"decision": decision.sys_id, "delivery_status": decision.status}
        events.append(HistoryEvent(decision.decided_at, DECISION,
                                   f"{decision.decision} by {decision.decided_by}: {decision.reason}", detail,
                                   decision.id))
        if decision.delivered_at is not None:
            events.append(HistoryEvent(decision.delivered_at, DELIVERED,
                                       f"EPM acknowledged the {decision.decision.lower()} decision", detail,
                                       decision.id))
    if decisions:
        calls = (OutboundCall.select().where(OutboundCall.decision.in_([d.id for d in decisions]))
                 .order_by(OutboundCall.created_at, OutboundCall.id))
        for call in calls:
            outcome = call.status if call.status is not None else call.error
            events.append(HistoryEvent(call.created_at, DELIVERY_ATTEMPT,
                                       f"{call.what}: {call.method} {call.path} → {outcome} in "
                                       f"{call.duration_ms:.0f} ms (attempt {call.attempt})",
                                       {"outbound_call": call.sys_id, "status": call.status, "error": call.error},
                                       call.id))
    return events


def ticket_history(task):
    """Every step of `task`'s processing, oldest first, as HistoryEvents."""
    events = [HistoryEvent(task.opened_at, CREATED, f"{task.ticket_type.label} {task.number} created",
                           {"number": task.number})]
    events += _deliveries(task)
    events += _decisions(task)
    for note in WorkNote.select().where(WorkNote.task == task).order_by(WorkNote.created_at, WorkNote.id):
        events.append(HistoryEvent(note.created_at, NOTE, note.text,
                                   {"author": note.author, "system": note.system}, note.id))
    if task.closed_at is not None:
        events.append(HistoryEvent(task.closed_at, CLOSED, f"Closed ({task.state_label})", {}))
    return sorted(events, key=lambda event: event.sort_key)
