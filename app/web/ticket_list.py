"""The ticket list's query: filters, free-text search and keyset pages, newest first.

Pages walk the `task_newest (opened_at DESC, id DESC)` index with a cursor of the
last row seen, so the hundredth page costs what the first does.
"""
import time
from dataclasses import dataclass

from flask import current_app

from app import contract
from app.db import database
from app.models import Configuration, Task
from app.tickets.api import state_condition
from app.tickets import rows, search
from app.tickets.cursors import encode_cursor  # noqa: F401 - bench/listing.py reads it from here

PAGE_SIZE = 50
MAX_QUERY_LENGTH = 100
# How long a process shows the same assignment groups in the filter: a group that EPM's
# first ticket for it brings appears in the choices up to this much later. The list of
# tickets itself is never cached.
GROUP_CHOICES_SECONDS = 5.0

# The list's first filter: what became of the request. An approver lands on what awaits a decision.
DECISION_AWAITING = "awaiting"
DECISION_EXPIRED = "expired"
DECISION_ANY = "all"
DECISION_CHOICES = ((DECISION_AWAITING, rows.STATUS_AWAITING), (DECISION_EXPIRED, rows.STATUS_EXPIRED),
                    (DECISION_ANY, "All tickets"))


@dataclass
class TicketFilters:
    """What the list was asked for; unknown values are dropped rather than refused."""

    state: str = ""
    kind: str = ""
    ticket_type: str = ""
    group: str = ""
    q: str = ""
    decision: str = ""  # one of DECISION_CHOICES' values; empty: any ticket

    @classmethod
    def from_args(cls, args):
        """The filters a URL asks for; without `decision`, what awaits a decision."""
        state = args.get("state", "")
        kind = args.get("kind", "")
        ticket_type = args.get("ticket_type", "")
        decision = args.get("decision", DECISION_AWAITING)
        return cls(
            decision=decision if decision in (DECISION_AWAITING, DECISION_EXPIRED) else "",
            state=state if state in contract.ALL_STATE_LABELS else "",
            kind=kind if kind in contract.KIND_LABELS else "",
            ticket_type=ticket_type if ticket_type in contract.TICKET_TYPES else "",
            group=args.get("group", "").strip()[:100],
            q=args.get("q", "").strip()[:MAX_QUERY_LENGTH],
        )

    def as_args(self):
        """The filters a link needs to keep them (what awaits a decision needs no argument)."""
        args = {name: value for name, value in vars(self).items() if value and name != "decision"}
        if self.decision != DECISION_AWAITING:
            args["decision"] = self.decision or DECISION_ANY
        return args

    @property
    def decision_choice(self):
        return self.decision or DECISION_ANY


def _search_condition(text):
    if contract.ticket_type_for_number(text):
        return Task.number == text.upper()
    return (Task.request_id == text) | search.text_condition(text)


def _settings():
    return current_app.extensions["settings"]


def awaiting_condition(configuration=None):
    """Tickets awaiting a decision under the configured active states and the expiry setting."""
    configuration = configuration or Configuration.default()
    return rows.awaiting_condition(configuration.active_state_labels, _settings().expire_pending_hours)


def awaiting_count():
    """How many tickets await a decision, for the main navigation."""
    return Task.select().where(awaiting_condition()).count()


def filtered_query(filters, configuration=None):
    query = Task.select()
    if filters.decision == DECISION_AWAITING:
        query = query.where(awaiting_condition(configuration))
    elif filters.decision == DECISION_EXPIRED:
        query = query.where(Task.expired_at.is_null(False))
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


# A loose index scan: one seek in the assignment_group index per distinct group, where
# SELECT DISTINCT reads the group of every ticket (a million index entries for a dozen groups).
_DISTINCT_GROUPS = (
    "WITH RECURSIVE found (name) AS ("
    " SELECT MIN(assignment_group) FROM task WHERE assignment_group > ''"
    " UNION ALL"
    " SELECT (SELECT MIN(assignment_group) FROM task WHERE assignment_group > found.name)"
    " FROM found WHERE found.name IS NOT NULL"
    ") SELECT name FROM found WHERE name IS NOT NULL"
)


def assignment_groups():
    """Every assignment group a ticket has, in order, for the filter's choices."""
    return [name for name, in database.execute_sql(_DISTINCT_GROUPS)]


class RecentGroups:
    """The assignment groups as read at most `lifetime` seconds ago; one per app.

    The filter's choices change when a ticket brings a new group, which is rare, but
    the query ran on every list page: on PostgreSQL it cost the server about as much
    as reading the page's 50 rows.
    """

    def __init__(self, lifetime=GROUP_CHOICES_SECONDS, clock=time.monotonic):
        self.lifetime = lifetime
        self.clock = clock
        self._remembered = None  # (groups, read_at)

    def groups(self):
        remembered, now = self._remembered, self.clock()
        if remembered is not None and now - remembered[1] < self.lifetime:
            return remembered[0]
        groups = tuple(assignment_groups())
        self._remembered = (groups, now)  # one assignment: threads see the old pair or the new one
        return groups


def group_choices():
    """The filter's assignment groups, read again once this app's copy is GROUP_CHOICES_SECONDS old."""
    recent = current_app.extensions.get("recent_groups")
    if recent is None:
        recent = current_app.extensions.setdefault("recent_groups", RecentGroups())
    return recent.groups()
