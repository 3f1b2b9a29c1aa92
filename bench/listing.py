"""The pages phase: every list, log and API page with a small and a large history.

A history is N tickets (bench/generate.py) and ten log rows per ticket over the four logs
(bench/logs.py): 1,000,000 tickets come with 10,000,000 log rows. The tickets come from an estate
that grew with its history (generate.Estate.grown_to: about 100 tickets per person and 50 per
machine at either size), so a search or a ticket page shows as many rows with the small history as
with the large one and the ratio between them is what the history costs, not a fuller page. Each page is loaded with wrk
by one client (one connection: what one person waits for) and by 16 connections (a busy
hour on 2 sync workers). Ticket pages: the approvers' browser list (first page, deep page at
90% of the history, free-text searches for a person, a machine, an application and a file
hash), one ticket's page, and the JSON list's first and deep page. Log pages, for admins: each
log's browser page and JSON twin, the first page and one 90% down in rotation.
"""
from urllib.parse import quote, urlencode

from app import contract
from app.audit.models import AuditEntry
from app.logs.models import AppLog, OutboundCall
from app.models import Account, IncomingRequest, Task
from bench import broker, generate, logs, servers, wrk

PAGE = 50
LOG_ROWS_PER_TICKET = 10
CLIENTS = {"one_client": 1, "connections_16": wrk.CONNECTIONS}
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
    from app.web.ticket_list import encode_cursor

    deep = deep_task(total)
    cursor = encode_cursor(deep)
    sample = list(Task.select().where(Task.kind == contract.KIND_APPLICATION).order_by(Task.id)
                  .offset(total // 2).limit(1))[0]
    numbers = [task.number for task in Task.select(Task.number).order_by(Task.id).offset(total // 3).limit(5)]
    api = contract.API_PREFIX + "/tickets"
    return {
        "list_first_page": ["/tickets"],
        "list_deep_page": [f"/tickets?after={quote(cursor)}"],
        "search": [f"/tickets?q={quote(term)}" for term in search_terms(sample)],
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


def measure(backend, size, options):
    """Generate `size` tickets and ten log rows per ticket on `backend`, then load each page; numbers per page."""
    with servers.database_for(backend, options.scratch, f"list{size}") as db:
        broker.prepare(db.url)
        with broker.broker_app(db.url):
            seconds = generate.generate(size, estate=generate.Estate.grown_to(size))
            log_seconds = logs.generate_logs(size * LOG_ROWS_PER_TICKET)
            paths = {**ticket_targets(size), **log_targets()}
        results = {"tickets": size, "log_rows": size * LOG_ROWS_PER_TICKET, "generate_seconds": seconds,
                   "generate_logs_seconds": log_seconds, "pages": {}}
        with servers.Gunicorn("app:create_app()", env=broker.server_env(db.url)) as server:
            for name, rotation in paths.items():
                username = broker.APPROVER if name in TICKET_PAGES else broker.ADMIN
                if name.startswith("api"):
                    headers = {"Authorization": _basic(username, broker.PASSWORD)}
                else:
                    with broker.broker_app(db.url) as app:
                        headers = {"Cookie": session_cookie(app, username)}
                wrk.run(server.url, "paths.lua", 1, script_args=rotation, headers=headers)
                page = {"paths": rotation}
                for clients, connections in CLIENTS.items():
                    page[clients] = wrk.run(server.url, "paths.lua", options.seconds, script_args=rotation,
                                            headers=headers, connections=connections,
                                            threads=min(connections, wrk.THREADS))
                results["pages"][name] = page
                _drain(server.url)
            results["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return results


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
