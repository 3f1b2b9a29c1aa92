"""Tickets read as plain named tuples for the list pages, newest first in keyset pages.

A peewee model per row and strptime on SQLite's timestamps cost several times the query itself."""
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from peewee import SQL, fn

from app import contract
from app.db import database
from app.models import AdminTicket, ApplicationAccessTicket, Decision, Task, utcnow
from app.tickets.cursors import decode_cursor, encode_cursor, newer_than, older_than
from app.tickets.decidable import open_decisions

# Each ticket type's state labels by value, looked up once rather than per row.
_STATE_LABELS = {(ticket_type.table, value): label
                 for ticket_type in contract.TICKET_TYPES.values() for value, label in ticket_type.states}


def _state_label(row):
    label = _STATE_LABELS.get((row.sys_class_name, row.state))
    return str(row.state) if label is None else label


class TicketRow(NamedTuple):
    """The columns of a ticket the JSON list shows, under Task's attribute names."""

    id: int
    sys_id: str
    number: str
    sys_class_name: str
    state: int
    kind: str
    request_id: str
    short_description: str
    assignment_group: str
    category: str
    requester: str | None
    host: str | None
    subject: str
    publisher: str | None
    requested_duration: str | None
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None

    @property
    def ticket_type(self):
        return contract.TICKET_TYPES[self.sys_class_name]

    state_label = property(_state_label)


class ListedTicket(NamedTuple):
    """The eleven columns of a ticket the browser's list and its cursor need: each one of 51 rows costs a conversion."""

    id: int
    number: str
    sys_class_name: str
    state: int
    kind: str
    requester: str | None
    host: str | None
    subject: str
    requested_duration: str | None
    opened_at: datetime
    expired_at: datetime | None

    state_label = property(_state_label)


_MOMENTS = ("opened_at", "updated_at", "closed_at", "expired_at")


def _columns(row_type):
    """(select list, index of the first timestamp) for reading `row_type`, whose timestamps come last.

    One literal, because peewee took about 0.3 ms to render 18 qualified columns."""
    fields = row_type._fields
    first = min(fields.index(name) for name in _MOMENTS if name in fields)
    assert set(fields[first:]) <= set(_MOMENTS), fields
    return SQL(", ".join(f'"{getattr(Task, name).column_name}"' for name in fields)), first


_COLUMNS = {row_type: _columns(row_type) for row_type in (TicketRow, ListedTicket)}


def stored_moment(value):
    """A stored timestamp as a datetime: SQLite hands back the text it stored, PostgreSQL a datetime."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return Task.opened_at.python_value(value)  # whatever peewee itself would make of it


def read_rows(query, row_type=TicketRow):
    """The tickets a query over `task` alone selects (its columns replaced by `row_type`'s), in its order."""
    select_list, first = _COLUMNS[row_type]
    cursor = database.execute_sql(*query.select(select_list).sql())
    return [row_type(*row[:first], *map(stored_moment, row[first:])) for row in cursor.fetchall()]


def newest_first(query):
    return query.order_by(Task.opened_at.desc(), Task.id.desc())


@dataclass
class RowPage:
    """One page of a newest-first list, with the cursors of the pages either side."""

    rows: list = field(default_factory=list)
    newer: str = None  # cursor for the page before (newer tickets), None on the first page
    older: str = None  # cursor for the next page (older tickets), None on the last page


def row_page(query, after=None, before=None, size=50, row_type=TicketRow):
    """One page of `query`'s tickets older than cursor `after`, newer than `before`, or the newest.

    One row past the page tells whether a further page exists, so no page needs a COUNT."""
    after, before = decode_cursor(after), decode_cursor(before)
    if before:
        found = read_rows(query.where(newer_than(before)).order_by(Task.opened_at.asc(), Task.id.asc())
                          .limit(size + 1), row_type)
        rows = found[:size][::-1]
        return RowPage(rows, newer=encode_cursor(rows[0]) if len(found) > size else None,
                       older=encode_cursor(rows[-1]) if rows else None)
    if after:
        query = query.where(older_than(after))
    found = read_rows(newest_first(query).limit(size + 1), row_type)
    rows = found[:size]
    return RowPage(rows, newer=encode_cursor(rows[0]) if after and rows else None,
                   older=encode_cursor(rows[-1]) if len(found) > size else None)


# What became of a ticket's request, in the words the list shows beside its state.
STATUS_AWAITING = "Awaiting decision"
STATUS_SENDING = "{decision} - sending to EPM"
STATUS_FAILED = "Failed to send"
STATUS_EXPIRED = contract.OUTCOME_EXPIRED
STATUS_NO_DECISION = "No decision"
_SHOWN_OUTCOMES = (contract.EPM_OUTCOME_REVOKED, contract.EPM_OUTCOME_ENDED_EARLY)


def decision_statuses(rows, is_active):
    """{ticket id: decision status} for a page of ListedTicket rows: two queries, whatever the page's size.

    EPM's word wins (its final decision, or a revocation or early end after it), then the latest decision's
    delivery; a ticket nobody decided awaits a decision while `is_active(row)`, and expired ones say so, those
    whose decision EPM refused (nobody decided them again in time) among them."""
    ids = [row.id for row in rows]
    if not ids:
        return {}
    final = {}
    for model in (ApplicationAccessTicket, AdminTicket):
        for task_id, decision, is_final, outcome in (
                model.select(model.task, model.final_decision, model.decision_final, model.epm_outcome)
                .where(model.task.in_(ids)).tuples()):
            if outcome in _SHOWN_OUTCOMES:
                final[task_id] = outcome
            elif is_final and decision:
                final[task_id] = decision
    latest = {}
    # Oldest first, so each ticket's latest decision is the one left.
    for task_id, decision, status in (Decision.select(Decision.task, Decision.decision, Decision.status)
                                      .where(Decision.task.in_(ids))
                                      .order_by(Decision.decided_at, Decision.id).tuples()):
        latest[task_id] = (decision, status)
    return {row.id: _status(row, final.get(row.id), latest.get(row.id), is_active) for row in rows}


def _status(row, final, latest, is_active):
    if final:
        return final
    if latest is not None:
        decision, status = latest
        if status == contract.DELIVERY_DELIVERED:
            return decision
        if status != contract.DELIVERY_FAILED:
            return STATUS_SENDING.format(decision=decision)
        if row.expired_at is None:
            return STATUS_FAILED
    if row.expired_at is not None:  # refused by EPM or not, nobody decided it (again) in time
        return STATUS_EXPIRED
    return STATUS_AWAITING if is_active(row) else STATUS_NO_DECISION


def active_states(labels):
    """{(ticket table, state value)} of the configured active state labels, in every ticket type."""
    return {(ticket_type.table, value) for ticket_type in contract.TICKET_TYPES.values()
            for value, label in ticket_type.states if label.casefold() in {text.casefold() for text in labels}}


def _in_states(states):
    condition = None
    for table in sorted({table for table, _value in states}):
        clause = (Task.sys_class_name == table) & Task.state.in_(sorted(v for t, v in states if t == table))
        condition = clause if condition is None else condition | clause
    return condition if condition is not None else Task.id.in_([])


def _epm_final():
    condition = None
    for model in (ApplicationAccessTicket, AdminTicket):
        final = fn.EXISTS(model.select(SQL("1")).where((model.task == Task.id) & model.decision_final))
        condition = final if condition is None else condition | final
    return condition


def undecided_condition(labels):
    """Tickets in an active state that nobody decided (no decision taken here that EPM did not refuse for good, no
    final one from EPM), unexpired: a decision EPM refused leaves its ticket to be decided again. The tickets
    decidable.refusal lets take a decision, by the same definition of a decision taken (open_decisions)."""
    condition = _in_states(active_states(labels)) & Task.expired_at.is_null()
    condition &= ~fn.EXISTS(open_decisions(Task.id).select(SQL("1")))
    return condition & ~_epm_final()


def settled_condition():
    """Tickets whose request is settled for good: a decision delivered to EPM, EPM's own final decision, or expired
    (decidable.refusal's MSG_FINAL and MSG_EXPIRED)."""
    delivered = open_decisions(Task.id).where(Decision.status == contract.DELIVERY_DELIVERED)
    return Task.expired_at.is_null(False) | fn.EXISTS(delivered.select(SQL("1"))) | _epm_final()


def waiting_over_condition(labels):
    """Tickets that no longer wait to take a decision (not decidable.waits): they take one now, or never will."""
    return undecided_condition(labels) | settled_condition()


def expiry_cutoff(hours, now=None):
    """When a request must have arrived after to still await a decision; None when requests never expire."""
    return (now or utcnow()) - timedelta(hours=hours) if hours > 0 else None


def awaiting_condition(labels, hours):
    """Tickets awaiting a decision: undecided, and younger than `hours` (0: any age). The age bound also keeps
    the newest-first walk short when few of a long history await anyone."""
    condition = undecided_condition(labels)
    cutoff = expiry_cutoff(hours)
    return condition if cutoff is None else condition & (Task.opened_at >= cutoff)
