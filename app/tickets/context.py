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

from app import contract
from app.models import AdminTicket, ApplicationAccessTicket, Decision, Task, utcnow
from app.tickets import search

POLICY_WINDOW = timedelta(days=30)
# How far back earlier requests are looked for: a range of the task_newest index, so a page view
# reads a bounded slice of the history rather than all of it.
LOOKBACK = timedelta(days=90)
SHOWN = 10  # earlier requests listed per group; the counts cover up to SCANNED
SCANNED = 500
# Outcome words as the ticket list shows a decision status.
AWAITING = "Awaiting decision"
FAILED_TO_SEND = "Failed to send"
_HASH = re.compile(r"^[0-9A-Fa-f]{32,128}$")
_HASH_KEYS = ("sha256Hash", "sha1Hash")


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


def _earlier(model, task, condition):
    """(task, jit) pairs of `model` matching `condition`, opened before `task`, newest first."""
    query = (model.select(model, Task).join(Task)
             .where(condition, Task.id != task.id, Task.opened_at <= task.opened_at,
                    Task.opened_at >= task.opened_at - LOOKBACK)
             .order_by(Task.opened_at.desc(), Task.id.desc()).limit(SCANNED))
    return [(jit.task, jit) for jit in query]


def _group(pairs):
    if not pairs:
        return None, []
    latest = _latest_decisions([task.id for task, _ in pairs])
    requests = []
    for task, jit in pairs:
        outcome, by, at = _outcome(jit, latest.get(task.id))
        requests.append(EarlierRequest(task.number, task.opened_at, task.requester or "", task.subject,
                                       outcome, by, at))
    requests.sort(key=lambda request: request.opened_at, reverse=True)
    counts = Counter(request.outcome for request in requests)
    return RequestGroup(len(requests), counts.most_common(), requests[:SHOWN]), requests


def application_condition(task, jit):
    """Where-clause for the same application as `jit` (hash, or publisher + product name), or None."""
    info = jit.request_info or {}
    conditions = []
    for key in _HASH_KEYS:
        value = info.get(key)
        if isinstance(value, str) and _HASH.match(value):
            # The ticket's search document holds its file hashes (Task.search_details): found through
            # the search index, where matching each JIT record's JSON read every one of them.
            conditions.append(search.text_condition(value))
    if task.publisher and info.get("productName"):
        conditions.append((Task.publisher == task.publisher) & (Task.subject == task.subject))
    if not conditions:
        return None
    condition = conditions[0]
    for other in conditions[1:]:
        condition |= other
    return condition


def decision_context(task, policy_suggestion_approvals, now=None):
    """What earlier requests say about this one.

    `policy_suggestion_approvals` approvals of the same application within POLICY_WINDOW suggest a policy (0: never)."""
    jit = task.jit_request
    same_application, application_requests = None, []
    if task.kind == contract.KIND_APPLICATION:
        condition = application_condition(task, jit)
        if condition is not None:
            same_application, application_requests = _group(_earlier(ApplicationAccessTicket, task, condition))
    same_user = None
    if task.requester:
        pairs = []
        for model in (ApplicationAccessTicket, AdminTicket):
            pairs += _earlier(model, task, Task.requester == task.requester)
        same_user, _ = _group(pairs)
    since = (now or utcnow()) - POLICY_WINDOW
    recent = sum(1 for request in application_requests if request.outcome == contract.DECISION_APPROVED
                 and request.decided_at is not None and request.decided_at >= since)
    return DecisionContext(same_application, same_user, recent,
                           policy_suggestion_approvals > 0 and recent >= policy_suggestion_approvals)
