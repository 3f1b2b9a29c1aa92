"""`python -m bench.inprocess`: CPU per request of the broker's own code, without a server.

Calls each app's WSGI callable directly, in this process, and reports the CPU time
(`time.process_time`, best of three rounds) one request costs: the roof's no-op
endpoint, the broker's `/healthz`, a delivery with real Basic auth made into its ticket
in a scratch SQLite database, and the first page of the JSON API and of the approvers'
HTML list over TICKETS generated tickets. What gunicorn, the kernel and wrk add per
request is the same for the roof and the broker, so the difference between these
figures is what the broker's stack costs beyond the roof. CPU time, unlike wall time,
hardly moves with what else the machine runs, though a busy machine still slows it.
"""
import argparse
import base64
import io
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from app import contract
from bench import broker, generate, intake, listing, roof

ROUNDS = 3
# Tickets in the scratch database the pages are read from.
TICKETS = 2000


def _environ(path, method="GET", body=b"", headers=None):
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
    }
    environ.update(headers or {})
    return environ


def _call(app, environ, statuses):
    def start_response(status, _headers, _exc_info=None):
        statuses.append(int(status.split()[0]))

    answer = app(environ, start_response)
    try:
        b"".join(answer)
    finally:
        getattr(answer, "close", lambda: None)()


def cpu_per_request(app, make_environ, requests):
    """Best-of-three CPU microseconds per request, and the statuses seen."""
    statuses = []
    for _ in range(min(300, requests)):  # warm: imports, caches, the first password check
        _call(app, make_environ(), statuses)
    best = None
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(requests):
            _call(app, make_environ(), statuses)
        per_request = (time.process_time() - started) / requests * 1e6
        best = per_request if best is None else min(best, per_request)
    return {"cpu_us_per_request": round(best), "statuses": sorted(set(statuses))}


def _delivery_bodies():
    """Created events built from the fixtures, each with a new RequestId, as the intake phase sends them."""
    document = json.loads((intake.FIXTURES / "urm_ticket_created.json").read_text())
    prefix, suffix = json.dumps({**document, "RequestId": "@@"}).split("@@")
    while True:
        yield (prefix + uuid.uuid4().hex + suffix).encode()


def measure(requests, folder, tickets=TICKETS):
    from app import create_app

    url = f"sqlite:///{Path(folder) / 'inprocess.db'}"
    broker.prepare(url)
    # Generated in an app of its own: the generator's bulk-load pragmas stay on its connections.
    with broker.broker_app(url):
        generate.generate(tickets)
    app = create_app({"database_url": url, "secret_key": broker.SECRET_KEY, "log_level": "WARNING"})
    with app.app_context():
        cookie = listing.session_cookie(app)
    api_token = base64.b64encode(f"{broker.API_USER}:{broker.PASSWORD}".encode()).decode()
    approver_token = base64.b64encode(f"{broker.APPROVER}:{broker.PASSWORD}".encode()).decode()
    bodies = _delivery_bodies()
    noop = roof.create_app()
    pages = max(1, requests // 10)  # a page costs about ten deliveries
    return {
        "roof_noop": cpu_per_request(noop, lambda: _environ("/noop", "POST", b'{"a": 1}'), requests),
        "broker_healthz": cpu_per_request(app, lambda: _environ("/healthz"), requests),
        "api_first_page_sqlite": cpu_per_request(
            app, lambda: _environ(f"{contract.API_PREFIX}/tickets", headers={
                "QUERY_STRING": f"limit={listing.PAGE}", "HTTP_AUTHORIZATION": f"Basic {approver_token}"}), pages),
        "list_first_page_sqlite": cpu_per_request(
            app, lambda: _environ("/tickets", headers={"HTTP_COOKIE": cookie}), pages),
        "webhook_sqlite": cpu_per_request(
            app, lambda: _environ(contract.WEBHOOK_PATH, "POST", next(bodies),
                                  {"HTTP_AUTHORIZATION": f"Basic {api_token}"}), requests),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per round (default 3000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jitbroker-inprocess-") as folder:
        results = measure(args.requests, folder)
    for name, result in results.items():
        print(f"{name}: {result['cpu_us_per_request']} us CPU per request (statuses {result['statuses']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
