"""A fake EPM tenant on a real loopback socket, for tests, benchmarks and the README demo.

It checks decision bodies against contract/epm.md, fires webhooks at a broker, injects faults, and
answers reads in the nested record shapes of the contract's section 5 (app/epm/fake_records.py). Its
console (app/epm/fake_console.py) decides, revokes and ends sessions as EPM's own users do."""
import argparse
import io
import itertools
import json
import logging
import os
import socket
import threading
import uuid

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from app import contract
from app.epm import fake_events
from app.epm.fake_console import FakeEpmConsole
from app.epm.fake_records import DEFAULT_STATUS_TEXT, KnownRequest
from app.epm.fake_routes import (  # noqa: F401 - TOKEN, DecisionCall: the fake's API
    API, CONTROL_PREFIX, TOKEN, DecisionCall, FakeEpmError, FakeEpmRoutes,
)
from app.stopping import stop_on_signals

log = logging.getLogger(__name__)

DEFAULT_CLIENT_ID = "broker-client"
DEFAULT_CLIENT_SECRET = "broker-secret"
FIRST_TICKET_NUMBER = 100231


# How long a kept-alive connection may sit idle before the fake closes it: longer than
# the EPM client keeps one (app.epm.client.KEEPALIVE_IDLE_SECONDS), so the fake never
# closes a connection the client is about to reuse.
KEEPALIVE_SECONDS = 60


class _KeepAliveHandler(WSGIRequestHandler):
    """Werkzeug's handler, keeping HTTP/1.1 connections open between requests as EPM does.

    Werkzeug closes each connection lest a body the application did not read hide the next request;
    this one reads each body whole first. Stopping the fake closes the connections too."""

    timeout = KEEPALIVE_SECONDS

    def setup(self):
        super().setup()
        # Werkzeug sends the headers and the body separately: without this, Nagle holds the
        # body back until the client's delayed ACK (40 ms) on every reused connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
            self.server.connections_opened += 1

    def finish(self):
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def run_wsgi(self):
        self._keep_alive = "chunked" not in self.headers.get("Transfer-Encoding", "").lower()
        if not self._keep_alive:
            return super().run_wsgi()
        connection_stream = self.rfile
        try:
            length = max(int(self.headers.get("Content-Length") or 0), 0)
        except ValueError:
            length = 0
        self.rfile = io.BytesIO(connection_stream.read(length) if length else b"")
        try:
            return super().run_wsgi()
        finally:
            self.rfile = connection_stream

    def send_header(self, keyword, value):
        if (keyword.lower() == "connection" and value.lower() == "close" and getattr(self, "_keep_alive", False)
                and not self.close_connection):
            return  # werkzeug's blanket close, when the client did not ask to close (or speak HTTP/1.0)
        super().send_header(keyword, value)

    def log_request(self, code="-", size="-"):
        log.debug("fake EPM: %s -> %s", self.requestline, code)

    def log_error(self, format, *args):
        if format.startswith("Request timed out"):
            # A kept-alive connection left idle for KEEPALIVE_SECONDS: closing it is routine, not an error.
            log.debug("fake EPM: closed a connection idle for %s s", KEEPALIVE_SECONDS)
            return
        super().log_error(format, *args)


class FakeEpm(FakeEpmRoutes, FakeEpmConsole):
    """One fake tenant. Use as a context manager, or start()/stop(); `url` is its base URL.

    strict: serve only the record keys section 5 confirms, refuse a decision for a request the fake never
    announced, and answer a refused decision body with ASP.NET's ValidationProblemDetails; lenient (the
    default) serves the dagger keys too and registers an unknown request as if it had announced it.
    status_text: accessDecision.status for "Pending", "Approved" and "Denied" (unconfirmed values; pass
    e.g. {"Approved": "2000", "Denied": "2001"}). admin_single_as_array: answer the v3 Admin Access single
    read as a one-element array, as the v2 one always is (5.2)."""

    def __init__(self, client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, *, broker_url=None,
                 webhook_user=None, webhook_password=None, auto_finalize=False, strict=False, host="127.0.0.1",
                 port=0, tenant_id=fake_events.DEFAULT_TENANT_ID, token_lifetime=3600,
                 token_path=contract.EPM_TOKEN_PATH, application_decision_path=contract.EPM_APPLICATION_DECISION_PATH,
                 admin_decision_path=contract.EPM_ADMIN_DECISION_PATH, webhook_timeout=10, status_text=None,
                 admin_single_as_array=False):
        self.client_id = client_id
        self._initial_secret = client_secret
        self.broker_url = broker_url
        self.webhook_auth = (webhook_user, webhook_password) if webhook_user else None
        self.auto_finalize = auto_finalize
        self.strict = strict
        self.status_text = {**DEFAULT_STATUS_TEXT, **(status_text or {})}
        self.admin_single_as_array = admin_single_as_array
        self.host, self._port = host, port
        self.tenant_id = tenant_id
        self.token_lifetime = token_lifetime
        self.webhook_timeout = webhook_timeout
        self._lock = threading.RLock()
        self._updates_sent = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._in_flight = 0
        self._server = self._thread = None
        self._app = self._build_app(token_path, application_decision_path, admin_decision_path)
        self.reset()

    def start(self):
        """Listen on host:port (0 picks a free port) in a background thread; returns self."""
        if self._server is None:
            self._stopping.clear()
            self._server = make_server(self.host, self._port, self._wsgi, threaded=True,
                                       request_handler=_KeepAliveHandler)
            self._server.connections, self._server.connections_lock = set(), threading.Lock()
            self._server.connections_opened = 0
            # A short poll interval so stop() returns at once rather than after up to 0.5 s.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="fake-epm", daemon=True)
            self._thread.start()
        return self

    def stop(self):
        """Wake delayed answers, wait for requests and update events in flight, close the socket."""
        if self._server is None:
            return
        self._stopping.set()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=10)
        self.wait_for_finalizations(10)
        self._server.shutdown()
        self._close_kept_alive_connections()
        self._server.server_close()
        self._thread.join(10)
        self._server = self._thread = None

    def _close_kept_alive_connections(self):
        # Their handler threads would otherwise go on answering for a stopped fake.
        with self._server.connections_lock:
            connections = list(self._server.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        """http://127.0.0.1:<port>: what an admin enters as the PMC Service Host Name."""
        return f"http://{self.host}:{self._server.server_port}"

    @property
    def connections_opened(self):
        """TCP connections accepted since start(): fewer than requests when clients keep them alive."""
        with self._server.connections_lock:
            return self._server.connections_opened

    def reset(self):
        """Forget everything (calls, requests, tokens, injected faults) and restore the first secret."""
        with self._lock:
            self.client_secret = self._initial_secret
            self.token_requests = 0
            self.calls = []
            self.requests = {}
            self.webhooks = []  # (EventType, RequestId, broker's status)
            self.finalize_errors = []
            self._tokens = {}
            self._idempotency_keys = set()
            self._failures = []
            self._delays = []
            self._pending_updates = 0  # update events promised by acknowledged decisions, not yet sent
            self._ticket_numbers = itertools.count(FIRST_TICKET_NUMBER)

    def fail_next(self, n, status, retry_after=None, *, endpoint=API):
        """Answer the next `n` calls to the management API (or, with endpoint="token", the token
        endpoint) with `status` and an optional Retry-After, without applying anything."""
        with self._lock:
            self._failures.extend([(endpoint, status, retry_after)] * n)

    def delay_next(self, seconds):
        """Apply the next decision at once but answer it only after `seconds`: a 2xx that arrives
        after the client gave up."""
        with self._lock:
            self._delays.append(seconds)

    def revoke_tokens(self):
        """Invalidate every issued token; the credentials stay valid (the next fetch works)."""
        with self._lock:
            self._tokens.clear()

    def rotate_secret(self, new_secret):
        """Regenerate the client secret, as an admin does in EPM: every issued token dies at once."""
        with self._lock:
            self.client_secret = new_secret
            self._tokens.clear()

    @property
    def received_count(self):
        """Decision calls received, repeats and refusals included."""
        with self._lock:
            return len(self.calls)

    @property
    def applied_count(self):
        """Decisions applied: at most one per request, never twice for one idempotency key."""
        with self._lock:
            return sum(call.applied for call in self.calls)

    def decision_for(self, request_id):
        """The decision body applied to `request_id`, or None."""
        with self._lock:
            known = self.requests.get(request_id)
            return None if known is None else known.decision

    def wait_for_finalizations(self, timeout=10):
        """Wait until the update event of every decision acknowledged so far was sent (or failed);
        True if none is left."""
        with self._updates_sent:
            return self._updates_sent.wait_for(lambda: self._pending_updates == 0, timeout=timeout)

    def add_request(self, kind, request_id=None, **fields):
        """Register a new request without telling the broker; returns its created event."""
        request_id = request_id or str(uuid.uuid4())
        build = (fake_events.application_created_event if kind == contract.KIND_APPLICATION
                 else fake_events.admin_created_event)
        with self._lock:
            event = build(request_id, next(self._ticket_numbers), tenant_id=self.tenant_id, **fields)
            self.requests[request_id] = KnownRequest(kind, event)
        return event

    def fire_application_request(self, **request_info):
        """A user asks to run an application: POST a URM_Native_Ticket_Created to the broker.
        Keyword arguments replace requestInfo values (user=..., hostName=...). Returns the RequestId."""
        event = self.add_request(contract.KIND_APPLICATION, **request_info)
        self.send_event(event)
        return event["RequestId"]

    def fire_admin_request(self, **fields):
        """A user asks for admin rights: POST a JIT_ADMIN_TICKET_CREATED. Returns the RequestId."""
        event = self.add_request(contract.KIND_ADMIN, **fields)
        self.send_event(event)
        return event["RequestId"]

    def send_event(self, event, content_type=None):
        """POST one event to the broker's webhook with Basic auth; FakeEpmError unless it answers 2xx.

        By default the body goes as application/json. With `content_type` it goes as raw bytes under that
        Content-Type ("text/plain", "text/json"...), or with no Content-Type at all when it is "" (5.5: the
        EPM admin chooses). `event` may also be bytes or a str, sent as they are."""
        if not self.broker_url:
            raise FakeEpmError("The fake EPM has no broker_url to send webhooks to")
        url = f"{self.broker_url.rstrip('/')}{contract.WEBHOOK_PATH}"
        if content_type is None and isinstance(event, dict):
            response = requests.post(url, json=event, auth=self.webhook_auth, timeout=self.webhook_timeout)
        else:
            body = event if isinstance(event, bytes) else event.encode() if isinstance(event, str) else (
                json.dumps(event).encode())
            headers = {"Content-Type": content_type} if content_type else {}
            response = requests.post(url, data=body, headers=headers, auth=self.webhook_auth,
                                     timeout=self.webhook_timeout)
        event_type, request_id = (event.get("EventType"), event.get("RequestId")) if isinstance(event, dict) else (
            None, None)
        with self._lock:
            self.webhooks.append((event_type, request_id, response.status_code))
        if not response.ok:
            raise FakeEpmError(f"The broker answered HTTP {response.status_code} to {event_type} "
                               f"{request_id}: {response.text[:300]}")
        return response

    def _finalize_later(self, known):
        # After the decision's answer is written: the broker's delivery must not wait on
        # the webhook it triggers, and EPM sends the update after it applied the decision.
        threading.Thread(target=self._send_update, args=(known,), name="fake-epm-update", daemon=True).start()

    def _send_update(self, known):
        try:
            with self._lock:
                event = self.update_event(known)
            self.send_event(event)
        except (FakeEpmError, requests.RequestException) as error:
            log.warning("fake EPM could not send the update event: %s", error)
            with self._lock:
                self.finalize_errors.append(str(error))
        finally:
            with self._updates_sent:
                self._pending_updates -= 1
                self._updates_sent.notify_all()

    def _wsgi(self, environ, start_response):
        with self._idle:
            self._in_flight += 1
        try:
            return self._app(environ, start_response)
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()


def main(argv=None):
    """Run a fake EPM until interrupted, optionally firing requests at a broker."""
    parser = argparse.ArgumentParser(prog="python -m app.epm.fake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=os.environ.get("FAKE_EPM_CLIENT_SECRET", DEFAULT_CLIENT_SECRET))
    parser.add_argument("--broker-url", help="the broker's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--webhook-user", help="the broker account with the api role")
    parser.add_argument("--webhook-password", default=os.environ.get("FAKE_EPM_WEBHOOK_PASSWORD"),
                        help="its password (or set FAKE_EPM_WEBHOOK_PASSWORD)")
    parser.add_argument("--auto-finalize", action=argparse.BooleanOptionalAction, default=True,
                        help="send EPM's update event after acknowledging a decision (default: on)")
    parser.add_argument("--fire-application", type=int, default=0, metavar="N",
                        help="send N Application Access requests to the broker at start")
    parser.add_argument("--fire-admin", type=int, default=0, metavar="N",
                        help="send N Admin Access requests to the broker at start")
    parser.add_argument("--strict", action=argparse.BooleanOptionalAction, default=False,
                        help="serve only the record keys contract/epm.md section 5 confirms and refuse what the real "
                             "API refuses: a decision missing a field or for an unknown request (default: off)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fake = FakeEpm(args.client_id, args.client_secret, broker_url=args.broker_url, webhook_user=args.webhook_user,
                   webhook_password=args.webhook_password, auto_finalize=args.auto_finalize, host=args.host,
                   port=args.port, strict=args.strict)
    stop = stop_on_signals()  # before the first line: whoever reads it may signal at once
    with fake:
        print(f"Fake EPM listening on {fake.url}: enter it as the PMC Service Host Name, with client ID "
              f"{args.client_id!r} and the client secret given (default {DEFAULT_CLIENT_SECRET!r}).", flush=True)
        print(f"Fire requests with: curl -X POST {fake.url}{CONTROL_PREFIX}/application-requests "
              f"(or /admin-requests); decide, revoke, end-session or send-missed with: curl -X POST "
              f"{fake.url}{CONTROL_PREFIX}/requests/<RequestId>/revoke; state: {fake.url}{CONTROL_PREFIX}/state",
              flush=True)
        for fire, count in ((fake.fire_application_request, args.fire_application),
                            (fake.fire_admin_request, args.fire_admin)):
            for _ in range(count):
                try:
                    print(f"fired {fire()}", flush=True)
                except (FakeEpmError, requests.RequestException) as error:
                    # Keep serving: the broker may not be up yet, and decisions can still arrive.
                    print(f"could not fire a request: {error}", flush=True)
        stop.wait()
        print("stopping", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
