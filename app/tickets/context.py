"""Earlier requests an approver weighs before deciding: the same application, the same user.

The same application is the same SHA-256 or SHA-1 hash, or the same publisher and product
name; the same user is the same requester. Each earlier request is told with how it was
decided and by whom. An application approved often (the `policy_suggestion_approvals`
setting, within POLICY_WINDOW) is a candidate for an EPM policy instead of a ticket each time.
"""
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from peewee import JOIN, fn

from app import contract
from app.models import AdminTicket, ApplicationAccessTicket, Decision, Task, utcnow

POLICY_WINDOW = timedelta(days=30)
# How far back earlier requests are looked for: with the indexes of migration 31 a page view reads
# a range of the person's or the application's tickets, at most SCANNED + 1 of them.
LOOKBACK = timedelta(days=90)
SHOWN = 10  # earlier requests listed per group; the counts cover up to SCANNED
SCANNED = 500
# Outcome words as the ticket list shows a decision status.
AWAITING = "Awaiting decision"
FAILED_TO_SEND = "Failed to send"
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


def _outcome(jit, latest):
    """(outcome, decided by, decided at): EPM's final word first, then the broker's decision, else awaiting."""
    if jit.epm_outcome:
        return jit.epm_outcome, jit.final_decision_by or "", jit.final_decision_time
    if jit.decision_final and jit.final_decision:
        return jit.final_decision, jit.final_decision_by or "", jit.final_decision_time
    if latest is not None:
        if latest.status == contract.DELIVERY_DELIVERED:
            words = latest.decision
        elif latest.status == contract.DELIVERY_FAILED:
            words = FAILED_TO_SEND
        else:
            words = f"{latest.decision} - sending to EPM"
        return words, latest.decided_by, latest.decided_at
    return AWAITING, "", None


def _latest_decisions(task_ids):
    """The latest broker decision of each task in `task_ids`, in one query."""
    latest = {}
    if not task_ids:
        return latest
    query = Decision.select().where(Decision.task.in_(task_ids)).order_by(Decision.decided_at, Decision.id)
    for decision in query:
        latest[decision.task_id] = decision
    return latest


@dataclass(frozen=True)
class _Earlier:
    """One earlier ticket as read: its task columns and its JIT record's final word (either kind)."""

    id: int
    number: str
    opened_at: object
    requester: str
    subject: str
    epm_outcome: str
    decision_final: bool
    final_decision: str
    final_decision_by: str
    final_decision_time: object


def earlier_ids(task, condition):
    """Ids of up to SCANNED + 1 tickets matching `condition`, opened in the LOOKBACK before `task`, newest first.

    One more than are counted tells "more than SCANNED" from "exactly SCANNED". A range of an index
    leading with what `condition` compares (migration 31) finds them: the count
    is bounded, never a COUNT of every match."""
    return (Task.select(Task.id)
            .where(condition, Task.id != task.id, Task.opened_at <= task.opened_at,
                   Task.opened_at >= task.opened_at - LOOKBACK)
            .order_by(Task.opened_at.desc(), Task.id.desc()).limit(SCANNED + 1))


def earlier_query(task, condition):
    """The tickets of earlier_ids() with their JIT record's final word (either kind), newest first, as tuples."""
    columns = [Task.id, Task.number, Task.opened_at, Task.requester, Task.subject]
    columns += [fn.COALESCE(getattr(ApplicationAccessTicket, name), getattr(AdminTicket, name))
                for name in ("epm_outcome", "decision_final", "final_decision", "final_decision_by",
                             "final_decision_time")]
    return (Task.select(*columns)
            .join(ApplicationAccessTicket, JOIN.LEFT_OUTER, on=(ApplicationAccessTicket.task == Task.id))
            .join_from(Task, AdminTicket, JOIN.LEFT_OUTER, on=(AdminTicket.task == Task.id))
            .where(Task.id.in_(earlier_ids(task, condition)))
            .order_by(Task.opened_at.desc(), Task.id.desc()).tuples())


def _earlier(task, condition):
    return [_Earlier(*row) for row in earlier_query(task, condition)]


def _newest(*lists):
    """The newest SCANNED + 1 of the tickets in `lists`, each once."""
    merged = {earlier.id: earlier for found in lists for earlier in found}
    return sorted(merged.values(), key=lambda earlier: (earlier.opened_at, earlier.id), reverse=True)[:SCANNED + 1]


def _group(found, latest):
    """The group of the earlier tickets `found`: the outcomes of the newest SCANNED, the newest SHOWN listed."""
    if not found:
        return None, []
    requests = []
    for earlier in found[:SCANNED]:
        outcome, by, at = _outcome(earlier, latest.get(earlier.id))
        requests.append(EarlierRequest(earlier.number, earlier.opened_at, earlier.requester or "", earlier.subject,
                                       outcome, by, at))
    counts = Counter(request.outcome for request in requests)
    return RequestGroup(len(requests), counts.most_common(), requests[:SHOWN], more=len(found) > SCANNED), requests


def file_hashes(request_info):
    """Task's sha256_hash and sha1_hash from what EPM sent: each hexadecimal hash lower-cased (the same
    file whatever case EPM writes it in), anything else None."""
    hashes = {}
    for key, column in _HASH_COLUMNS:
        value = (request_info or {}).get(key)
        hashes[column] = value.lower() if isinstance(value, str) and _HASH.match(value) else None
    return hashes


def application_conditions(task, jit):
    """Where-clauses for the same application as `jit`: each file hash, then publisher + product name.

    Each is asked on its own, as a range of its own index (migration 31): a query ORing them would
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
    # The index of migration 31 leads with the requester.
    same_user = _earlier(task, Task.requester == task.requester) if task.requester else []
    latest = _latest_decisions(sorted({earlier.id for earlier in same_application[:SCANNED] + same_user[:SCANNED]}))
    application_group, application_requests = _group(same_application, latest)
    user_group, _ = _group(same_user, latest)
    since = (now or utcnow()) - POLICY_WINDOW
    recent = sum(1 for request in application_requests if request.outcome == contract.DECISION_APPROVED
                 and request.decided_at is not None and request.decided_at >= since)
    return DecisionContext(application_group, user_group, recent,
                           policy_suggestion_approvals > 0 and recent >= policy_suggestion_approvals)
