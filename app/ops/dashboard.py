"""The operations dashboard: the last 30 days of requests, decisions and failures, and patterns to watch.

Figures are computed in Python so they read the same on SQLite and PostgreSQL; percentiles use the
nearest rank, a real time some ticket had."""
import math
import statistics
from collections import Counter, defaultdict
from datetime import timedelta

from app import contract
from app.logs.models import AppLog, OutboundCall
from app.logs.setup import WEBHOOK_AUTH_LOGGER
from app.models import Decision, IncomingRequest, Task, utcnow

WINDOW_DAYS = 30
# Requests opened outside these UTC hours, [start, end), are after-hours requests.
BUSINESS_HOURS_UTC = (7, 19)
DENIAL_BURST_COUNT = 5
DENIAL_BURST_WINDOW = timedelta(hours=1)
SPREAD_REQUESTERS = 3
SPREAD_WINDOW = timedelta(hours=24)
FLAG_LIST_LIMIT = 20



def nearest_rank(values, percent):
    """The `percent`th percentile of `values` by nearest rank, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


def _requests_per_day(tasks, first_day, days):
    counts = defaultdict(Counter)
    for task in tasks:
        counts[task.opened_at.date()][task.kind] += 1
    rows = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        row = {"date": day, **{kind: counts[day][kind] for kind in contract.KIND_LABELS}}
        row["total"] = sum(counts[day].values())
        rows.append(row)
    return rows


def _time_to_decision(since):
    """Seconds from opening to the first decision that was not refused for good, per ticket opened since `since`."""
    rows = (Decision.select(Decision.task, Decision.decided_at, Task.opened_at)
            .join(Task)
            .where(Task.opened_at >= since, Decision.status != contract.DELIVERY_FAILED)
            .order_by(Decision.decided_at)
            .tuples())
    first = {}
    for task_id, decided_at, opened_at in rows:
        first.setdefault(task_id, (decided_at - opened_at).total_seconds())
    seconds = list(first.values())
    return {
        "decided_tickets": len(seconds),
        "median_seconds": statistics.median(seconds) if seconds else None,
        "p90_seconds": nearest_rank(seconds, 90),
    }


def _spans(times, wanted, window):
    """Merged index spans [i, j] of sorted `times` where `wanted` fall within `window` of each other."""
    spans = []
    start = 0
    for end in range(len(times)):
        while times[end] - times[start] > window:
            start += 1
        if end - start + 1 >= wanted:
            if spans and start <= spans[-1][1]:
                spans[-1][1] = end
            else:
                spans.append([start, end])
    return spans


def denial_bursts(denials):
    """Runs of at least DENIAL_BURST_COUNT denials within DENIAL_BURST_WINDOW: [{start, end, count, deciders}]."""
    times = [decision.decided_at for decision in denials]
    bursts = []
    for start, end in _spans(times, DENIAL_BURST_COUNT, DENIAL_BURST_WINDOW):
        members = denials[start:end + 1]
        bursts.append({"start": times[start], "end": times[end], "count": len(members),
                       "deciders": sorted({decision.decided_by for decision in members})})
    return bursts


def is_after_hours(moment):
    start, end = BUSINESS_HOURS_UTC
    return not start <= moment.hour < end


def widely_requested(tasks):
    """Applications that SPREAD_REQUESTERS or more different users asked for within SPREAD_WINDOW."""
    by_product = defaultdict(list)
    for task in tasks:
        if task.kind == contract.KIND_APPLICATION and task.requester:
            by_product[task.subject.strip().casefold()].append(task)
    flagged = []
    for product_tasks in by_product.values():
        product_tasks.sort(key=lambda task: task.opened_at)
        start = 0
        seen = Counter()
        spans = []
        for end, task in enumerate(product_tasks):
            seen[task.requester.casefold()] += 1
            while task.opened_at - product_tasks[start].opened_at > SPREAD_WINDOW:
                leaving = product_tasks[start].requester.casefold()
                seen[leaving] -= 1
                if not seen[leaving]:
                    del seen[leaving]
                start += 1
            if len(seen) >= SPREAD_REQUESTERS:
                if spans and start <= spans[-1][1]:
                    spans[-1][1] = end
                else:
                    spans.append([start, end])
        for first, last in spans:
            members = product_tasks[first:last + 1]
            flagged.append({
                "application": members[0].subject,
                "requesters": sorted({task.requester for task in members}, key=str.casefold),
                "requests": len(members),
                "start": members[0].opened_at,
                "end": members[-1].opened_at,
                "tickets": [task.number for task in members],
            })
    return sorted(flagged, key=lambda flag: flag["end"], reverse=True)


def dashboard(now=None):
    """Every figure and flag of the dashboard for the WINDOW_DAYS days up to `now` (naive UTC)."""
    now = now or utcnow()
    first_day = (now - timedelta(days=WINDOW_DAYS - 1)).date()
    since = now - timedelta(days=WINDOW_DAYS)

    tasks = list(Task.select(Task.id, Task.number, Task.kind, Task.opened_at, Task.requester, Task.subject)
                 .where(Task.opened_at >= since).order_by(Task.opened_at, Task.id))
    decisions = list(Decision.select(Decision.id, Decision.decision, Decision.decided_at, Decision.decided_by,
                                     Decision.status)
                     .where(Decision.decided_at >= since).order_by(Decision.decided_at, Decision.id))
    effective = [decision for decision in decisions if decision.status != contract.DELIVERY_FAILED]
    denials = [decision for decision in effective if decision.decision == contract.DECISION_DENIED]
    after_hours = [task for task in tasks if is_after_hours(task.opened_at)]
    auth_failures = list(AppLog.select(AppLog.created_at)
                         .where(AppLog.logger == WEBHOOK_AUTH_LOGGER, AppLog.created_at >= since)
                         .order_by(AppLog.created_at.desc()).tuples())
    failed_attempts = (OutboundCall.select()
                       .where(OutboundCall.created_at >= since, OutboundCall.decision.is_null(False),
                              OutboundCall.status.is_null() | ~OutboundCall.status.between(200, 299)
                              | OutboundCall.error.is_null(False))
                       .count())

    return {
        "window_days": WINDOW_DAYS,
        "since": since,
        "now": now,
        "requests_per_day": _requests_per_day(tasks, first_day, WINDOW_DAYS),
        "requests": {kind: sum(1 for task in tasks if task.kind == kind) for kind in contract.KIND_LABELS},
        "decisions": {
            "approved": sum(1 for decision in effective if decision.decision == contract.DECISION_APPROVED),
            "denied": len(denials),
        },
        "time_to_decision": _time_to_decision(since),
        "failures": {
            "incoming_errors": IncomingRequest.select().where(IncomingRequest.received_at >= since,
                                                              IncomingRequest.status == contract.INCOMING_ERROR).count(),
            "decision_deliveries_failed": sum(1 for d in decisions if d.status == contract.DELIVERY_FAILED),
            "decision_delivery_attempts_failed": failed_attempts,
            "decisions_waiting": Decision.select().where(
                Decision.status.in_([contract.DELIVERY_PENDING, contract.DELIVERY_SENDING])).count(),
            "webhook_authentication_failures": len(auth_failures),
            "last_webhook_authentication_failure": auth_failures[0][0] if auth_failures else None,
        },
        "flags": {
            "denial_bursts": denial_bursts(denials),
            "after_hours_requests": {
                "count": len(after_hours),
                "business_hours_utc": list(BUSINESS_HOURS_UTC),
                "latest": [{"ticket": task.number, "opened_at": task.opened_at, "requester": task.requester,
                            "kind": task.kind, "subject": task.subject}
                           for task in reversed(after_hours[-FLAG_LIST_LIMIT:])],
            },
            "widely_requested_applications": widely_requested(tasks)[:FLAG_LIST_LIMIT],
        },
    }
