"""Queued intake's common case, answered in the WSGI stack before Flask dispatches it.

In queued mode a delivery's whole work is one INSERT (`service.accept`). Flask's
request and app contexts, its hooks, the session and the JSON response built around
that INSERT cost several times its CPU (`python -m bench.inprocess`), and under a
burst of deliveries that CPU is what limits intake. `DirectWebhook` answers a POST to
the webhook itself when every one of these holds:

- the intake mode is queued;
- the Basic credentials were verified a moment ago for an active account holding the
  view's role, sent from an address the throttle let through a moment ago
  (`basic.is_remembered`, the check the view itself starts with);
- no query string and no cookie; a Content-Length within the body limit; a JSON type;
- a JSON object whose EventType and RequestId pass queued intake's quick checks
  (`service.quick_reading`).

Anything else (a credential's first delivery, every refusal, a database outage) goes
on to the Flask view with the body as it was read, and the view answers, stores and
counts it exactly as before. The answer is the view's, header for header: the tests
(tests/intake/test_intake_direct.py) compare the two. It sits inside ProxyFix, so the
address and scheme it reads are the ones Flask reads.
"""
import io
import logging
import uuid

from werkzeug.datastructures import Authorization

from app import contract
from app.auth.basic import is_remembered
from app.db import UNAVAILABLE_ERRORS, release_connection
from app.errors import BadRequest
from app.intake import service
from app.intake.payload import parse_json_object
from app.intake.views import is_json, webhook
from app.logs.setup import REQUEST_ID_HEADER, usable_request_id
from app.security.headers import HSTS
from app.settings import INTAKE_QUEUED

log = logging.getLogger(__name__)


def _environ_key(header):
    """Where the WSGI environ holds a request header's value (werkzeug's EnvironHeaders reads it there too)."""
    key = header.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"


# The headers a delivery keeps, with their environ keys: read without wrapping the environ.
_KEPT_HEADER_KEYS = tuple((name, _environ_key(name)) for name in service.KEPT_HEADERS)


class DirectWebhook:
    """WSGI middleware: stores and answers queued deliveries it can take, hands on the rest."""

    def __init__(self, app, view_app):
        self.app = app
        self.view_app = view_app  # the Flask WSGI callable it wraps
        self.limit = app.config["MAX_CONTENT_LENGTH"]
        self.roles = webhook.required_roles
        self._answer = _AnswerTemplate(app)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != contract.WEBHOOK_PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.view_app(environ, start_response)
        try:
            sys_id = self._store(environ)
        except UNAVAILABLE_ERRORS:
            # Nothing was stored (the INSERT is one statement): the view tries again and
            # answers as it always does while the database is away (503).
            sys_id = None
        except Exception:  # noqa: BLE001 - the view answers; a fault here must still be seen
            log.exception("the webhook's direct path failed; the view answers this delivery")
            sys_id = None
        finally:
            release_connection()
        if sys_id is None:
            return self.view_app(environ, start_response)
        body, headers = self._answer.render(sys_id)
        headers.append((REQUEST_ID_HEADER, usable_request_id(environ.get("HTTP_X_REQUEST_ID")) or uuid.uuid4().hex))
        if environ.get("wsgi.url_scheme") == "https":
            headers.append(("Strict-Transport-Security", HSTS))
        start_response("200 OK", headers)
        return [body]

    def _store(self, environ):
        """The sys_id of the delivery stored from this request, or None to hand it to the view."""
        if environ.get("QUERY_STRING") or environ.get("HTTP_COOKIE") or not is_json(environ.get("CONTENT_TYPE")):
            return None
        length = environ.get("CONTENT_LENGTH")
        if not length or not length.isdigit() or int(length) > self.limit:
            return None
        if not self._authenticated(environ):
            return None
        body = environ["wsgi.input"].read(int(length))
        # Read once: whatever happens next, the view reads the same bytes.
        environ["wsgi.input"] = io.BytesIO(body)
        if len(body) != int(length):
            return None
        try:
            reading = service.quick_reading(parse_json_object(body, storable=False))
        except BadRequest:
            return None
        if reading is None:
            return None
        event, request_id = reading
        headers = {name: environ[key] for name, key in _KEPT_HEADER_KEYS if key in environ}
        delivery = service.Delivery(body, environ.get("CONTENT_TYPE"), headers, environ.get("REMOTE_ADDR"))
        return delivery.store_queued(event.name, request_id)

    def _authenticated(self, environ):
        credentials = Authorization.from_header(environ.get("HTTP_AUTHORIZATION"))
        if credentials is None or credentials.type != "basic":
            return False
        username, password = credentials.username or "", credentials.password or ""
        account = self.app.extensions["account_cache"].by_username(username)
        return is_remembered(self.app, account, username, password, environ.get("REMOTE_ADDR")) and \
            account.role in self.roles


class _AnswerTemplate:
    """The view's 200 for a queued delivery, rendered once by Flask's own JSON response and
    filled in with each delivery's sys_id: the same bytes and headers, without building a
    Response per delivery."""

    _MARKER = "0" * 32  # a sys_id's length: uuid4().hex

    def __init__(self, app):
        response = app.json.response(
            result={"incoming_request": self._MARKER, "status": contract.INCOMING_RECEIVED, "ticket": None})
        self.prefix, self.suffix = response.get_data().split(self._MARKER.encode())
        self.headers = [(name, value) for name, value in response.headers.items() if name != "Content-Length"]

    def render(self, sys_id):
        """(body, headers) for the delivery stored as `sys_id`; the headers are a new list."""
        body = b"".join((self.prefix, sys_id.encode(), self.suffix))
        return body, [*self.headers, ("Content-Length", str(len(body)))]


def install(app):
    """Put the direct path in front of `app`'s Flask dispatch when intake is queued."""
    if app.extensions["settings"].intake_mode == INTAKE_QUEUED:
        app.wsgi_app = DirectWebhook(app, app.wsgi_app)
