"""The ticket list and search phase: the same pages with a small and a large history.

Measured with wrk over 16 connections, like every other phase: the JSON API's first
page and a deep page (cursor at 90% of the history), and the approvers' browser list:
first page, deep page, and free-text searches for a person, a machine and an
application (the three things approvers search for), in rotation.
"""
from urllib.parse import quote, urlencode

from app import contract
from app.models import Account, Task
from bench import broker, generate, servers, wrk

PAGE = 50


def session_cookie(app):
    """A signed-in browser session for the bench's approver, as a browser holds it after its first page.

    That page gave the session its CSRF token; without one every request would make a
    token and send a new cookie, which a real browser pays once. The session's last-seen
    stamp is renewed (and the cookie sent again) once it is 30 s old, and wrk never takes
    a cookie back: each page's load gets a fresh cookie, as a browser keeps the renewed one.
    """
    from flask import session
    from flask_wtf.csrf import generate_csrf

    from app.web.access import start_session

    with app.test_request_context():
        start_session(Account.by_username(broker.APPROVER))
        generate_csrf()
        value = app.session_interface.get_signing_serializer(app).dumps(dict(session))
    return f"{app.config.get('SESSION_COOKIE_NAME', 'session')}={value}"


def deep_task(total):
    """The ticket 90% of the way down the newest-first list."""
    # Not .get(): peewee's get() pages to the first row and drops the offset.
    return list(Task.select().order_by(Task.opened_at.desc(), Task.id.desc()).offset(int(total * 0.9)).limit(1))[0]


def search_terms(task):
    """A person, a machine and an application taken from a real ticket, as an approver would type them."""
    person = task.requester.split("\\")[-1]
    return [person, task.host, "VPN Client"]


def targets(app, total):
    """The paths each measurement rotates through."""
    from app.web.ticket_list import encode_cursor

    deep = deep_task(total)
    cursor = encode_cursor(deep)
    sample = list(Task.select().where(Task.kind == contract.KIND_APPLICATION).order_by(Task.id)
                  .offset(total // 2).limit(1))[0]
    api = contract.API_PREFIX + "/tickets"
    return {
        "api_first_page": [f"{api}?limit={PAGE}"],
        "api_deep_page": [f"{api}?{urlencode({'limit': PAGE, 'cursor': cursor})}"],
        "list_first_page": ["/tickets"],
        "list_deep_page": [f"/tickets?after={quote(cursor)}"],
        "search": [f"/tickets?q={quote(term)}" for term in search_terms(sample)],
    }


def measure(backend, size, options):
    """Generate `size` tickets on `backend`, then load each page; returns numbers per page."""
    with servers.database_for(backend, options.scratch, f"list{size}") as db:
        broker.prepare(db.url)
        with broker.broker_app(db.url) as app:
            seconds = generate.generate(size)
            paths = targets(app, size)
        results = {"tickets": size, "generate_seconds": seconds, "pages": {}}
        with servers.Gunicorn("app:create_app()", env=broker.server_env(db.url)) as server:
            auth = _basic(broker.APPROVER, broker.PASSWORD)
            for name, rotation in paths.items():
                if name.startswith("api"):
                    headers = {"Authorization": auth}
                else:
                    with broker.broker_app(db.url) as app:
                        headers = {"Cookie": session_cookie(app)}
                wrk.run(server.url, "paths.lua", 1, script_args=rotation, headers=headers)
                result = wrk.run(server.url, "paths.lua", options.seconds, script_args=rotation, headers=headers)
                result["paths"] = rotation
                results["pages"][name] = result
            results["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return results


def _basic(username, password):
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
