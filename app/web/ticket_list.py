"""The ticket list's query: filters, free-text search and keyset pages, newest first.

Pages walk the `task_newest (opened_at DESC, id DESC)` index with a cursor of the
last row seen, so the hundredth page costs what the first does.
"""
from dataclasses import dataclass, field
from datetime import datetime

from app import contract
from app.models import Task
from app.tickets.api import state_condition

PAGE_SIZE = 50
MAX_QUERY_LENGTH = 100
_CURSOR_TIME = "%Y-%m-%dT%H:%M:%S.%f"


@dataclass
class TicketFilters:
    """What the list was asked for; unknown values are dropped rather than refused."""

    state: str = ""
    kind: str = ""
    ticket_type: str = ""
    group: str = ""
    q: str = ""

    @classmethod
    def from_args(cls, args):
        state = args.get("state", "")
        kind = args.get("kind", "")
        ticket_type = args.get("ticket_type", "")
        return cls(
            state=state if state in contract.ALL_STATE_LABELS else "",
            kind=kind if kind in contract.KIND_LABELS else "",
            ticket_type=ticket_type if ticket_type in contract.TICKET_TYPES else "",
            group=args.get("group", "").strip()[:100],
            q=args.get("q", "").strip()[:MAX_QUERY_LENGTH],
        )

    def as_args(self):
        """The non-empty filters, for links that keep them."""
        return {name: value for name, value in vars(self).items() if value}


@dataclass
class TicketPage:
    tasks: list = field(default_factory=list)
    newer: str = None  # cursor for the page before (newer tickets), None on the first page
    older: str = None  # cursor for the next page (older tickets), None on the last page


def encode_cursor(task):
    return f"{task.opened_at.strftime(_CURSOR_TIME)}_{task.id}"


def decode_cursor(text):
    """(opened_at, id) from a cursor, or None for anything that is not one."""
    try:
        moment, _, task_id = (text or "").partition("_")
        return datetime.strptime(moment, _CURSOR_TIME), int(task_id)
    except ValueError:
        return None


def _search_condition(text):
    if contract.ticket_type_for_number(text):
        return Task.number == text.upper()
    condition = Task.request_id == text
    for column in (Task.number, Task.requester, Task.host, Task.subject, Task.publisher):
        condition |= column.contains(text)
    return condition


def filtered_query(filters):
    query = Task.select()
    if filters.state:
        query = query.where(state_condition(filters.state))
    if filters.kind:
        query = query.where(Task.kind == filters.kind)
    if filters.ticket_type:
        query = query.where(Task.sys_class_name == filters.ticket_type)
    if filters.group:
        query = query.where(Task.assignment_group == filters.group)
    if filters.q:
        query = query.where(_search_condition(filters.q))
    return query


def _older_than(cursor):
    opened_at, task_id = cursor
    return (Task.opened_at < opened_at) | ((Task.opened_at == opened_at) & (Task.id < task_id))


def _newer_than(cursor):
    opened_at, task_id = cursor
    return (Task.opened_at > opened_at) | ((Task.opened_at == opened_at) & (Task.id > task_id))


def ticket_page(filters, after=None, before=None, size=PAGE_SIZE):
    """One page of tickets older than cursor `after`, or newer than cursor `before`, or the newest."""
    query = filtered_query(filters)
    after, before = decode_cursor(after), decode_cursor(before)
    if before:
        rows = list(query.where(_newer_than(before))
                    .order_by(Task.opened_at.asc(), Task.id.asc()).limit(size + 1))
        more_newer = len(rows) > size
        tasks = list(reversed(rows[:size]))
        return TicketPage(tasks, newer=encode_cursor(tasks[0]) if more_newer else None,
                          older=encode_cursor(tasks[-1]) if tasks else None)
    if after:
        query = query.where(_older_than(after))
    rows = list(query.order_by(Task.opened_at.desc(), Task.id.desc()).limit(size + 1))
    tasks = rows[:size]
    return TicketPage(tasks, newer=encode_cursor(tasks[0]) if after and tasks else None,
                      older=encode_cursor(tasks[-1]) if len(rows) > size else None)


def assignment_groups():
    """Every assignment group a ticket has, for the filter's choices (read from its index)."""
    query = (Task.select(Task.assignment_group).where(Task.assignment_group != "")
             .distinct().order_by(Task.assignment_group))
    return [row.assignment_group for row in query]
