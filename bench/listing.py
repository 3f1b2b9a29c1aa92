"""The pages phase: every list, log and API page with a small and a large history.

A history is N tickets (bench/generate.py) and ten log rows per ticket over the four logs
(bench/logs.py): 1,000,000 tickets come with 10,000,000 log rows. The tickets come from an estate
that grew with its history (generate.Estate.grown_to: about 100 tickets per person and 50 per
machine at either size), so a search or a ticket page shows as many rows with the small history as
with the large one and the ratio between them is what the history costs, not a fuller page. Each page is loaded with wrk
by one client (one connection: what one person waits for) and by 16 connections (a busy
hour on 2 sync workers). Ticket pages: the approvers' browser list (first page, deep page at
90% of the history, free-text searches over all tickets for a person, a machine, an application and
a file hash), one ticket's page, and the JSON list's first and deep page. Log pages, for admins: each
log's browser page and JSON twin, the first page and one 90% down in rotation. Both histories are
served side by side and one client's load alternates between them over ROUNDS rounds (measure).
"""
from urllib.parse import quote, urlencode

from app import contract
from app.audit.models import AuditEntry
from app.logs.models import AppLog, OutboundCall
from app.models import Account, IncomingRequest, Task
from bench import broker, generate, logs, servers, wrk

PAGE = 50
LOG_ROWS_PER_TICKET = 10
TICKET_PAGES = ("list_first_page", "list_deep_page", "search", "ticket_page", "api_first_page", "api_deep_page")
LOG_PAGES = ("incoming_log", "outbound_log", "app_log", "audit_log", "api_incoming_log", "api_outbound_log",
             "api_app_log", "api_audit_log", "api_incoming_requests")


def session_cookie(app, username=broker.APPROVER):
    """A signed-in browser session for `username`, as a browser holds it after its first page.

    That page gave the session its CSRF token; without one every request would make a
    token and send a new cookie, which a real browser pays once. The session's last-seen
    stamp is renewed (and the cookie sent again) once it is 30 s old, and wrk never takes
    a cookie back: each page's load gets a fresh cookie, as a browser keeps the renewed one.
    """
    from flask import session
    from flask_wtf.csrf import generate_csrf

    from app.auth.sessions import start_session

    with app.test_request_context():
        start_session(Account.by_username(username))
        generate_csrf()
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return f"{app.config.get('SESSION_COOKIE_NAME', 'session')}={value}"


def deep_task(total):
    """The ticket 90% of the way down the newest-first list."""
    # Not .get(): peewee's get() pages to the first row and drops the offset.
    return list(Task.select().order_by(Task.opened_at.desc(), Task.id.desc()).offset(int(total * 0.9)).limit(1))[0]


def search_terms(task):
    """A person, a machine, an application and a file hash from a real ticket, as an approver would type them."""
    person = task.requester.split("\\")[-1]
    return [person, task.host, "VPN Client", task.jit_request.request_info["sha256Hash"][:16]]


def _deep_entry(model, attribute="sys_id"):
    """The entry 90% of the way down a log, newest first (read by id: the log's own order)."""
    count = model.select().count()
    row = list(model.select(model.id, model.sys_id).order_by(model.id.desc()).offset(int(count * 0.9)).limit(1))[0]
    return getattr(row, attribute)


def ticket_targets(total):
    from app.web import ticket_list

    deep = deep_task(total)
    cursor = ticket_list.encode_cursor(deep)
    sample = list(Task.select().where(Task.kind == contract.KIND_APPLICATION).order_by(Task.id)
                  .offset(total // 2).limit(1))[0]
    numbers = [task.number for task in Task.select(Task.number).order_by(Task.id).offset(total // 3).limit(5)]
    api = contract.API_PREFIX + "/tickets"
    return {
        "list_first_page": ["/tickets"],
        "list_deep_page": [f"/tickets?after={quote(cursor)}"],
        # Over all tickets: the list's own filter (what awaits a decision) would leave a search for a
        # ticket of a year ago an empty page.
        "search": [f"/tickets?{urlencode({'decision': ticket_list.DECISION_ANY, 'q': term})}"
                   for term in search_terms(sample)],
        "ticket_page": [f"/tickets/{number}" for number in numbers],
        "api_first_page": [f"{api}?limit={PAGE}"],
        "api_deep_page": [f"{api}?{urlencode({'limit': PAGE, 'cursor': cursor})}"],
    }


def log_targets():
    api = contract.API_PREFIX
    pages = {"incoming_log": ("/admin/incoming", IncomingRequest), "outbound_log": ("/admin/outbound", OutboundCall),
             "app_log": ("/admin/logs", AppLog), "api_incoming_log": (f"{api}/ops/incoming_requests", IncomingRequest),
             "api_outbound_log": (f"{api}/ops/outbound_calls", OutboundCall),
             "api_app_log": (f"{api}/ops/app_log", AppLog),
             "api_incoming_requests": (f"{api}/incoming_requests", IncomingRequest)}
    targets = {name: [f"{path}?limit={PAGE}", f"{path}?limit={PAGE}&before={_deep_entry(model)}"]
               for name, (path, model) in pages.items()}
    targets["audit_log"] = ["/admin/audit", f"/admin/audit?before={_deep_entry(AuditEntry, 'id')}"]
    # The audit API runs oldest first: its deep page is 90% up from the oldest.
    targets["api_audit_log"] = [f"{api}/audit?limit={PAGE}&after=1",
                                f"{api}/audit?limit={PAGE}&after={_deep_entry(AuditEntry, 'id')}"]
    return targets


# One client's load of each page alternates between the two histories over this many rounds (small, large,
# small, ...), both servers up side by side, and the page's figures are the round whose ratio is the median: a
# change in what the machine does touches both sides of a round alike. The 16-connection load runs once.
ROUNDS = 3


def _prepared_history(backend, size, options, stack):
    """A database of `size` tickets and ten log rows per ticket, its pages, and its gunicorn serving it."""
    db = stack.enter_context(servers.database_for(backend, options.scratch, f"list{size}"))
    broker.prepare(db.url)
    with broker.broker_app(db.url):
        seconds = generate.generate(size, estate=generate.Estate.grown_to(size))
        log_seconds = logs.generate_logs(size * LOG_ROWS_PER_TICKET)
        paths = {**ticket_targets(size), **log_targets()}
    headers = {}
    for name in paths:
        username = broker.APPROVER if name in TICKET_PAGES else broker.ADMIN
        if name.startswith("api"):
            headers[name] = {"Authorization": _basic(username, broker.PASSWORD)}
        else:
            with broker.broker_app(db.url) as app:
                headers[name] = {"Cookie": session_cookie(app, username)}
    results = {"tickets": size, "log_rows": size * LOG_ROWS_PER_TICKET, "generate_seconds": seconds,
               "generate_logs_seconds": log_seconds, "pages": {}}
    server = stack.enter_context(servers.Gunicorn("app:create_app()", env=broker.server_env(db.url)))
    return {"results": results, "paths": paths, "headers": headers, "server": server}


def _load(history, name, seconds, connections=1):
    server = history["server"]
    result = wrk.run(server.url, "paths.lua", seconds, script_args=history["paths"][name],
                     headers=history["headers"][name], connections=connections, threads=min(connections, wrk.THREADS))
    _drain(server.url)
    return result


def measure(backend, small, large, options):
    """Generate a small and a large history on `backend` (`small` and `large` tickets, ten log rows per ticket),
    serve both, and load each page on both; returns {"small": numbers per page, "large": ...}."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        histories = {"small": _prepared_history(backend, small, options, stack),
                     "large": _prepared_history(backend, large, options, stack)}
        for name in histories["small"]["paths"]:
            for history in histories.values():
                _load(history, name, 1)  # warm
            rounds = []
            for _ in range(ROUNDS):
                little, big = (_load(histories[size], name, options.seconds) for size in ("small", "large"))
                rounds.append({"small": little, "large": big, "ratio": _ratio(little, big)})
            median = sorted(rounds, key=lambda round_: round_["ratio"])[len(rounds) // 2]
            for size, history in histories.items():
                history["results"]["pages"][name] = {
                    "paths": history["paths"][name], "one_client": median[size],
                    "connections_16": _load(history, name, options.seconds, wrk.CONNECTIONS),
                    "one_client_rounds": [{"p50": round_[size]["latency_ms"]["p50"],
                                           "p95": round_[size]["latency_ms"]["p95"]} for round_ in rounds],
                }
            histories["large"]["results"]["pages"][name]["ratios_by_round"] = [
                round(round_["ratio"], 2) for round_ in rounds]
        for history in histories.values():
            history["results"]["worker_peak_rss_mb"] = history["server"].worker_peak_rss_mb()
        return {size: history["results"] for size, history in histories.items()}


def _ratio(little, big):
    """The large history's one-client p95 over the small one's (infinite when either answered nothing)."""
    if not little["requests"] or not big["requests"] or not little["latency_ms"]["p95"]:
        return float("inf")
    return big["latency_ms"]["p95"] / little["latency_ms"]["p95"]


def _drain(url, quick_seconds=0.5, limit_seconds=300):
    """Wait until the workers answer /healthz at once: requests wrk left queued (a slow page's) are done,
    so they do not count against the next page."""
    import time

    import requests

    deadline = time.monotonic() + limit_seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            requests.get(f"{url}/healthz", timeout=limit_seconds)
        except requests.RequestException:
            pass
        if time.monotonic() - started < quick_seconds:
            return


def _basic(username, password):
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
