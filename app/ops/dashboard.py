"""The operations dashboard: the last 30 days (UTC, today included) of requests, decisions and failures, and
patterns to watch.

Figures are computed in Python so they read the same on SQLite and PostgreSQL; percentiles use the
nearest rank, a real time some ticket had. `charts` lays three of them out as bar charts, in the
coordinates of an SVG viewBox, so the page draws them without a script or a chart library."""
import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta

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
# The time-to-decision chart's bars: (upper bound in seconds, exclusive, or None for no bound; label).
DECISION_TIME_BINS = ((5 * 60, "< 5 min"), (15 * 60, "5–15 min"), (60 * 60, "15–60 min"),
                      (4 * 3600, "1–4 h"), (24 * 3600, "4–24 h"), (None, "≥ 1 day"))
OUTCOME_LABELS = {"approved": "Approved", "denied": "Denied", "refused": "Refused by EPM"}
# Column chart geometry in viewBox units: the plot sits between CHART_LEFT and CHART_WIDTH - CHART_RIGHT,
# from CHART_TOP down to CHART_BASELINE; the columns' labels go below the baseline.
CHART_WIDTH, CHART_HEIGHT = 600, 250
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BASELINE = 44, 30, 14, 214
# Row chart geometry (a few labelled bars, narrow panels and phones): labels end at ROW_LABEL_END, bars
# run from ROW_BAR_START up to ROW_CHART_WIDTH - ROW_VALUE_ROOM, each count printed after its bar.
ROW_CHART_WIDTH, ROW_HEIGHT, ROW_LABEL_END, ROW_BAR_START, ROW_VALUE_ROOM = 360, 34, 118, 126, 44
DAY_LABEL_EVERY = 7


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


def _decision_seconds(since):
    """Seconds from opening to the first decision that was not refused for good, per ticket opened since `since`."""
    rows = (Decision.select(Decision.task, Decision.decided_at, Task.opened_at)
            .join(Task)
            .where(Task.opened_at >= since, Decision.status != contract.DELIVERY_FAILED)
            .order_by(Decision.decided_at)
            .tuples())
    first = {}
    for task_id, decided_at, opened_at in rows:
        first.setdefault(task_id, (decided_at - opened_at).total_seconds())
    return list(first.values())


def _time_to_decision(seconds):
    return {
        "decided_tickets": len(seconds),
        "median_seconds": statistics.median(seconds) if seconds else None,
        "p90_seconds": nearest_rank(seconds, 90),
    }


def _decision_time_spread(seconds):
    """How many tickets were decided within each of DECISION_TIME_BINS: [{label, count}]."""
    counts = Counter()
    for value in seconds:
        counts[next(label for bound, label in DECISION_TIME_BINS if bound is None or value < bound)] += 1
    return [{"label": label, "count": counts[label]} for _, label in DECISION_TIME_BINS]


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


def axis_top(largest):
    """The top of a count axis: the smallest 1, 2 or 5 times a power of ten at or above `largest` (1 for none)."""
    power = 1
    while True:
        for factor in (1, 2, 5):
            if factor * power >= largest:
                return factor * power
        power *= 10


def bar_chart(title, description, columns, series):
    """A bar chart laid out in viewBox units. `columns`: [{label, tip, values: {series key: count}}], each
    drawn as one bar stacked in `series` order; `series`: the keys, bottom first."""
    top = axis_top(max((sum(column["values"].values()) for column in columns), default=0))
    plot_height = CHART_BASELINE - CHART_TOP
    band = (CHART_WIDTH - CHART_LEFT - CHART_RIGHT) / len(columns)
    width = band * 0.7
    bars = []
    for index, column in enumerate(columns):
        x = CHART_LEFT + index * band + (band - width) / 2
        y = CHART_BASELINE
        segments = []
        for key in series:
            value = column["values"].get(key, 0)
            if value:
                height = value / top * plot_height
                y -= height
                segments.append({"series": key, "x": round(x, 1), "y": round(y, 1), "width": round(width, 1),
                                 "height": round(height, 1)})
        bars.append({"label": column["label"], "tip": column["tip"], "segments": segments,
                     "total": sum(column["values"].values()),
                     "label_x": round(x + width / 2, 1)})
    ticks = sorted({0, top} | ({top // 2} if top % 2 == 0 else set()))
    return {
        "kind": "columns", "title": title, "description": description, "bars": bars,
        "width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT, "right": CHART_WIDTH - CHART_RIGHT,
        "baseline": CHART_BASELINE,
        "ticks": [{"value": value, "y": round(CHART_BASELINE - value / top * plot_height, 1)} for value in ticks],
    }


def row_chart(title, description, rows):
    """A bar per row, laid out in viewBox units. `rows`: [{label, tip, key, count}]; bars scale to the largest."""
    largest = max((row["count"] for row in rows), default=0) or 1
    room = ROW_CHART_WIDTH - ROW_VALUE_ROOM - ROW_BAR_START
    bars = []
    for index, row in enumerate(rows):
        top = index * ROW_HEIGHT + 4
        width = row["count"] / largest * room
        segments = [{"series": row["key"], "x": ROW_BAR_START, "y": top, "width": round(width, 1),
                     "height": ROW_HEIGHT - 10}] if row["count"] else []
        bars.append({"label": row["label"], "tip": row["tip"], "total": row["count"], "segments": segments,
                     "label_x": ROW_LABEL_END, "value_x": round(ROW_BAR_START + width + 6, 1),
                     "text_y": top + (ROW_HEIGHT - 10) / 2})
    return {"kind": "rows", "title": title, "description": description, "bars": bars,
            "width": ROW_CHART_WIDTH, "height": len(rows) * ROW_HEIGHT, "axis_x": ROW_BAR_START}


def _requests_chart(board):
    days = board["requests_per_day"]
    total = sum(day["total"] for day in days)
    if total:
        busiest = max(reversed(days), key=lambda day: day["total"])
        kinds = ", ".join(f"{board['requests'][kind]} {label}" for kind, label in contract.KIND_LABELS.items())
        description = (f"{total} requests in the last {len(days)} days ({kinds}); the busiest day was "
                       f"{busiest['date'].isoformat()} with {busiest['total']}.")
    else:
        description = f"No requests in the last {len(days)} days."
    columns = []
    for index, day in enumerate(days):
        counts = ", ".join(f"{day[kind]} {label}" for kind, label in contract.KIND_LABELS.items())
        labelled = (len(days) - 1 - index) % DAY_LABEL_EVERY == 0
        columns.append({"label": f"{day['date'].day} {day['date']:%b}" if labelled else "",
                        "tip": f"{day['date'].isoformat()}: {counts}",
                        "values": {kind: day[kind] for kind in contract.KIND_LABELS}})
    return bar_chart("Requests per day", description, columns, list(contract.KIND_LABELS))


def _outcomes_chart(board):
    outcomes = board["decision_outcomes"]
    counts = ", ".join(f"{label} {outcomes[key]}" for key, label in OUTCOME_LABELS.items())
    rows = [{"label": label, "tip": f"{label}: {outcomes[key]}", "key": key, "count": outcomes[key]}
            for key, label in OUTCOME_LABELS.items()]
    return row_chart("Decisions by outcome", f"Decisions in the last {board['window_days']} days: {counts}.", rows)


def _decision_time_chart(board):
    spread = board["time_to_decision_spread"]
    decided = board["time_to_decision"]["decided_tickets"]
    counts = ", ".join(f"{row['label']}: {row['count']}" for row in spread)
    description = (f"{decided} tickets decided, by the time their first decision took: {counts}." if decided
                   else f"No ticket opened in the last {board['window_days']} days was decided.")
    rows = [{"label": row["label"], "tip": f"{row['label']}: {row['count']} tickets", "key": "tickets",
             "count": row["count"]} for row in spread]
    return row_chart("Time to decision", description, rows)


def charts(board):
    """The dashboard's three charts (requests per day, decisions by outcome, time to decision) for `board`."""
    return {"requests": _requests_chart(board), "outcomes": _outcomes_chart(board),
            "decision_time": _decision_time_chart(board)}


def dashboard(now=None):
    """Every figure and flag of the dashboard for the WINDOW_DAYS calendar days (UTC) up to `now` (naive UTC),
    today included: from midnight of the first day the requests chart shows."""
    now = now or utcnow()
    first_day = (now - timedelta(days=WINDOW_DAYS - 1)).date()
    # Every figure counts from the first day the requests chart shows, so the totals are its bars' sum.
    since = datetime.combine(first_day, time.min)

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
    seconds = _decision_seconds(since)
    failed_attempts = (OutboundCall.select()
                       .where(OutboundCall.created_at >= since, OutboundCall.decision.is_null(False),
                              OutboundCall.status.is_null() | ~OutboundCall.status.between(200, 299)
                              | OutboundCall.error.is_null(False))
                       .count())

    board = {
        "window_days": WINDOW_DAYS,
        "since": since,
        "now": now,
        "requests_per_day": _requests_per_day(tasks, first_day, WINDOW_DAYS),
        "requests": {kind: sum(1 for task in tasks if task.kind == kind) for kind in contract.KIND_LABELS},
        "decisions": {
            "approved": sum(1 for decision in effective if decision.decision == contract.DECISION_APPROVED),
            "denied": len(denials),
        },
        "decision_outcomes": {
            "approved": sum(1 for decision in effective if decision.decision == contract.DECISION_APPROVED),
            "denied": len(denials),
            "refused": len(decisions) - len(effective),
        },
        "time_to_decision": _time_to_decision(seconds),
        "time_to_decision_spread": _decision_time_spread(seconds),
        "failures": {
            "incoming_errors": IncomingRequest.select().where(
                IncomingRequest.received_at >= since, IncomingRequest.status == contract.INCOMING_ERROR).count(),
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
    board["charts"] = charts(board)
    return board
