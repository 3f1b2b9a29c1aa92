"""A ticket's processing history, in order, from what the broker stored: deliveries, ticket, notes,
decisions and calls to EPM."""
from dataclasses import dataclass, field
from datetime import datetime

from app import contract
from app.models import Decision, IncomingRequest, WorkNote
from app.logs.models import OutboundCall

# The kinds of step, in the order two steps at the same instant are shown.
RECEIVED = "delivery received"
CREATED = "ticket created"
DECISION = "decision recorded"
DELIVERY_ATTEMPT = "delivery attempt"
DELIVERED = "decision delivered"
FINALIZED = "finalized by EPM"
CLOSED = "closed"
NOTE = "work note"
KIND_ORDER = (RECEIVED, CREATED, DECISION, DELIVERY_ATTEMPT, DELIVERED, FINALIZED, CLOSED, NOTE)


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
    events = []
    incoming_rows = (IncomingRequest.select().where(IncomingRequest.task == task)
                     .order_by(IncomingRequest.received_at, IncomingRequest.id))
    for incoming in incoming_rows:
        detail = {"incoming_request": incoming.sys_id, "event_type": incoming.event_type, "status": incoming.status}
        events.append(HistoryEvent(incoming.received_at, RECEIVED,
                                   f"{incoming.event_type} received from EPM ({incoming.status})", detail, incoming.id))
        event = contract.EVENT_TYPES.get(incoming.event_type or "")
        if (event is not None and not event.is_created and incoming.status == contract.INCOMING_PROCESSED
                and incoming.processed_at is not None):
            jit = task.jit_request
            # processed_at is stamped after the finalizing work notes; the step belongs right
            # after the update's arrival (or the ticket's creation, for an update that waited).
            events.append(HistoryEvent(incoming.processed_at, FINALIZED,
                                       f"EPM finalized the decision: {jit.final_decision or 'unknown'} by "
                                       f"{jit.final_decision_by or 'unknown'}", detail, incoming.id,
                                       order_at=max(incoming.received_at, task.opened_at)))
    return events


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
