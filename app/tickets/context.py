"""Earlier requests an approver weighs before deciding: the same application, the same user.

The same application is the same SHA-256 or SHA-1 hash, or the same publisher and product
name; the same user is the same requester. Each earlier request is told with how it was
decided and by whom, as kept on its ticket (app/tickets/outcome.py). An application approved
often (the `policy_suggestion_approvals` setting, within POLICY_WINDOW) is a candidate for an
EPM policy instead of a ticket each time.
"""
import re
from collections import Counter, namedtuple
from dataclasses import dataclass, field
from datetime import timedelta

from app import contract
from app.db import database
from app.models import Task, utcnow
from app.tickets.rows import stored_moment

POLICY_WINDOW = timedelta(days=30)
# How far back earlier requests are looked for: with the indexes of migration 32 a page view reads
# a range of the person's or the application's tickets, at most SCANNED + 1 of them, and no table.
LOOKBACK = timedelta(days=90)
SHOWN = 10  # earlier requests listed per group; the counts cover up to SCANNED
SCANNED = 500
# Outcome words (app/tickets/outcome.py).
AWAITING = contract.OUTCOME_AWAITING
FAILED_TO_SEND = contract.OUTCOME_FAILED_TO_SEND
_HASH = re.compile(r"^[0-9A-Fa-f]{32,128}$")
# request_info's hash keys and the Task columns holding them.
_HASH_COLUMNS = (("sha256Hash", "sha256_hash"), ("sha1Hash", "sha1_hash"))


@dataclass(frozen=True)
class EarlierRequest:
    """One earlier ticket, its outcome in words, who decided and when."""

    number: str
    opened_at: object
    requester: str
    subject: str
    outcome: str
    decided_by: str
    decided_at: object


@dataclass(frozen=True)
class RequestGroup:
    """Earlier requests sharing something with this one: how many, how they ended, the latest few."""

    total: int
    outcomes: list
    requests: list = field(default_factory=list)
    more: bool = False  # more than `total` (SCANNED): the counts cover the newest SCANNED


@dataclass(frozen=True)
class DecisionContext:
    same_application: RequestGroup | None
    same_user: RequestGroup | None
    recent_approvals: int
    suggest_policy: bool


# One earlier ticket as its range's index holds it: enough to count how it ended (app/tickets/outcome.py).
# A named tuple, made straight from the database's row: a page counts up to three times 501 of them.
_Earlier = namedtuple("_Earlier", "id opened_at outcome outcome_at")


# What an earlier ticket is read with: every column is in the index each range is read from (migration 32).
# The index holds no more than counting needs: the shown ones' number, requester, product and decider are read
# by id (SHOWN a group), which keeps an index entry well under PostgreSQL's limit whatever the names' lengths.
EARLIER_COLUMNS = (Task.id, Task.opened_at, Task.outcome, Task.outcome_at)


def earlier_query(task, condition):
    """Up to SCANNED + 1 tickets matching `condition`, opened in the LOOKBACK before `task`, newest first, as
    tuples of EARLIER_COLUMNS.

    One more than are counted tells "more than SCANNED" from "exactly SCANNED". A range of an index leading
    with what `condition` compares and holding every column read (migration 32) finds them, reading no table:
    the count is bounded, never a COUNT of every match."""
    return (Task.select(*EARLIER_COLUMNS)
            .where(condition, Task.id != task.id, Task.opened_at <= task.opened_at,
                   Task.opened_at >= task.opened_at - LOOKBACK)
            .order_by(Task.opened_at.desc(), Task.id.desc()).limit(SCANNED + 1).tuples())


def _earlier(task, condition):
    """earlier_query's rows as _Earlier, as the driver answers them: on SQLite a date-time is its stored text, which
    orders as the time does; only the few shown or compared become datetimes (rows.stored_moment), where peewee
    would try each format it knows on every one (most of a 501-row range's cost)."""
    return list(map(_Earlier._make, database.execute_sql(*earlier_query(task, condition).sql())))


def _newest(*lists):
    """The newest SCANNED + 1 of the tickets in `lists`, each once."""
    merged = {earlier.id: earlier for found in lists for earlier in found}
    return sorted(merged.values(), key=lambda earlier: (earlier.opened_at, earlier.id), reverse=True)[:SCANNED + 1]


def _shown_details(*groups):
    """{id: (number, requester, subject, outcome_by)} of the SHOWN newest tickets of each group, in one query."""
    ids = sorted({earlier.id for found in groups for earlier in found[:SHOWN]})
    if not ids:
        return {}
    rows = Task.select(Task.id, Task.number, Task.requester, Task.subject, Task.outcome_by).where(Task.id.in_(ids))
    return {row[0]: row[1:] for row in rows.tuples()}


def _group(found, details):
    """The group of the earlier tickets `found`: the outcomes of the newest SCANNED, the newest SHOWN listed."""
    if not found:
        return None, []
    counted = found[:SCANNED]
    counts = Counter(earlier.outcome for earlier in counted)
    shown = []
    for earlier in counted[:SHOWN]:
        number, requester, subject, outcome_by = details[earlier.id]
        shown.append(EarlierRequest(number, stored_moment(earlier.opened_at), requester or "", subject, earlier.outcome,
                                    outcome_by, stored_moment(earlier.outcome_at)))
    return RequestGroup(len(counted), counts.most_common(), shown, more=len(found) > SCANNED), counted


def file_hashes(request_info):
    """Task's sha256_hash and sha1_hash from what EPM sent: each hexadecimal hash lower-cased (the same
    file whatever case EPM writes it in), anything else None."""
    hashes = {}
    for key, column in _HASH_COLUMNS:
        value = (request_info or {}).get(key)
        hashes[column] = value.lower() if isinstance(value, str) and _HASH.fullmatch(value) else None
    return hashes


def application_conditions(task, jit):
    """Where-clauses for the same application as `jit`: each file hash, then publisher + product name.

    Each is asked on its own, as a range of its own index (migration 32): a query ORing them would
    collect every match of the 90 days to sort them."""
    conditions = [getattr(Task, column) == getattr(task, column) for _key, column in _HASH_COLUMNS
                  if getattr(task, column)]
    if task.publisher and (jit.request_info or {}).get("productName"):
        conditions.append((Task.publisher == task.publisher) & (Task.subject == task.subject))
    return conditions


def decision_context(task, policy_suggestion_approvals, now=None):
    """What earlier requests say about this one.

    `policy_suggestion_approvals` approvals of the same application within POLICY_WINDOW suggest a policy (0: never)."""
    same_application = []
    if task.kind == contract.KIND_APPLICATION:
        same_application = _newest(*(_earlier(task, condition)
                                     for condition in application_conditions(task, task.jit_request)))
    # The index of migration 32 leads with the requester.
    same_user = _earlier(task, Task.requester == task.requester) if task.requester else []
    details = _shown_details(same_application, same_user)
    application_group, application_requests = _group(same_application, details)
    user_group, _ = _group(same_user, details)
    since = (now or utcnow()) - POLICY_WINDOW
    recent = sum(1 for earlier in application_requests if earlier.outcome == contract.DECISION_APPROVED
                 and earlier.outcome_at is not None and stored_moment(earlier.outcome_at) >= since)
    return DecisionContext(application_group, user_group, recent,
                           policy_suggestion_approvals > 0 and recent >= policy_suggestion_approvals)
