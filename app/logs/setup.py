"""The service's log: JSON lines on stdout, a request id per HTTP request, and the app-log table.

Every record carries `request_id` and `ticket`: the HTTP request's id (EPM's or a
proxy's X-Request-Id when it sent a usable one, else a new one, echoed back in the
response header) and the ticket the record is about, when known. A log shipper can
take stdout as it is; admins read the stored records in the browser (app/logs/store.py).
Each refused webhook delivery is logged here too, so the dashboard can count them.
"""
import contextvars
import json
import logging
import re
import sys
import uuid
from contextlib import contextmanager

from flask import g, has_request_context, request

from app import contract
from app.db import database
from app.logs import store

REQUEST_ID_HEADER = "X-Request-Id"
# What we accept from a caller as a request id: short, and nothing that could break a
# log line or a response header.
_USABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

_request_id = contextvars.ContextVar("jitbroker_request_id", default=None)
_ticket = contextvars.ContextVar("jitbroker_ticket", default=None)

# Handlers this module installs carry this attribute, so a second create_app in one
# process (tests, the CLI) replaces them instead of adding more.
_MARK = "_jitbroker_handler"

# Each refused webhook delivery is one WARNING record of this logger, stored in the
# app-log table like every warning; the dashboard counts them. The name predates logs/.
WEBHOOK_AUTH_LOGGER = "app.ops.webhook_auth"
REFUSED_WEBHOOK_STATUSES = (401, 403, 429)


@contextmanager
def log_context(ticket=None, request_id=None):
    """Label the records logged inside the block with a ticket number and/or a request id."""
    tokens = []
    if ticket is not None:
        tokens.append((_ticket, _ticket.set(ticket)))
    if request_id is not None:
        tokens.append((_request_id, _request_id.set(request_id)))
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)


def _ticket_from_request():
    if not has_request_context() or not request.view_args:
        return None
    number = str(request.view_args.get("number") or "").upper()
    return number if contract.ticket_type_for_number(number) else None


class LogContextFilter(logging.Filter):
    """Adds `request_id` and `ticket` to every record a handler sees (None when unknown)."""

    def filter(self, record):
        if getattr(record, "request_id", None) is None:
            record.request_id = _request_id.get()
        if getattr(record, "ticket", None) is None:
            try:
                record.ticket = _ticket.get() or _ticket_from_request()
            except Exception:  # noqa: BLE001 - labelling a record must never stop it
                record.ticket = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, ticket (and exception)."""

    def format(self, record):
        line = store.record_fields(record)
        line["time"] = line["time"].isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if not line["exception"]:
            del line["exception"]
        return json.dumps(line, ensure_ascii=False, default=str)


class _StdoutHandler(logging.StreamHandler):
    """JSON lines to stdout from `shown_level` up, and every record of the broker's loggers while the debug switch
    is on; a stream closed under it (a finished test's capture) is not an error worth a traceback."""

    def __init__(self, stream, shown_level):
        super().__init__(stream)
        # Not the handler's own level: that would hide the debug switch's records before filter() saw them.
        self.shown_level = shown_level

    def filter(self, record):
        shown = record.levelno >= self.shown_level or (
            store.debug_switch.enabled and (record.name + ".").startswith(store.BROKER_LOGGER + "."))
        return shown and super().filter(record)

    def handleError(self, record):
        if getattr(self.stream, "closed", False):
            return
        super().handleError(record)


def _level(name):
    level = logging.getLevelName(str(name).strip().upper())
    return level if isinstance(level, int) else logging.INFO


def configure_logging(app):
    """Send records to stdout as JSON and WARNING+ to the app-log table; give requests an id.

    The `[logging] level` setting decides what reaches stdout, never what is stored; the
    configuration's debug switch lowers the broker's own loggers to DEBUG (on stdout too)
    and stores INFO+ while it is on.
    Refused webhook deliveries are logged as warnings of WEBHOOK_AUTH_LOGGER.
    """
    install_log_handlers(app)
    _install_request_ids(app)


def install_log_handlers(app):
    """(Re)place this module's handlers on the root logger, writing to the current stdout."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)

    level = _level(app.extensions["settings"].log_level)
    context = LogContextFilter()
    stdout_handler = _StdoutHandler(sys.stdout, level)
    stdout_handler.setFormatter(JsonFormatter())
    stdout_handler.addFilter(context)
    store_handler = store.StoreHandler()
    store_handler.addFilter(context)
    for handler in (stdout_handler, store_handler):
        setattr(handler, _MARK, True)
        root.addHandler(handler)
    # Low enough for both handlers: a level above WARNING for stdout must not keep warnings from the
    # store (refused webhook deliveries are counted from it).
    root.setLevel(min(level, store.STORE_LEVEL))
    # APScheduler logs "Running job" and "executed successfully" at INFO for each run of each
    # job, some 80 lines a minute from an idle scheduler; `jitbroker jobs status` has each last run.
    # Its warnings go to the store and, at a level that shows them, to stdout like any other.
    logging.getLogger("apscheduler").setLevel(logging.WARNING if level > logging.DEBUG else logging.NOTSET)
    store.debug_switch.reset()
    store.start(database.obj, app.extensions["settings"])


def usable_request_id(incoming):
    """A client's X-Request-Id when it is safe to log and echo; None for none or any other."""
    return incoming if incoming and _USABLE_REQUEST_ID.fullmatch(incoming) else None


def _install_request_ids(app):
    @app.before_request
    def _start_request_log():
        request_id = usable_request_id(request.headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        g.request_id = request_id
        g.request_id_token = _request_id.set(request_id)

    @app.after_request
    def _echo_request_id(response):
        if g.get("request_id"):
            response.headers[REQUEST_ID_HEADER] = g.request_id
        return response

    @app.after_request
    def _log_refused_webhook(response):
        # 401: unknown account or wrong password; 403: a real account without the api role
        # (an approver's credentials typed into EPM); 429: refused unchecked after too many
        # failures. Each means a delivery from EPM was lost.
        if request.path == contract.WEBHOOK_PATH and response.status_code in REFUSED_WEBHOOK_STATUSES:
            credentials = request.authorization
            username = (credentials.username or "")[:150] if credentials is not None else None
            logging.getLogger(WEBHOOK_AUTH_LOGGER).warning(
                "webhook authentication refused (HTTP %s) from %s for %s", response.status_code,
                request.remote_addr, repr(username) if username else "no credentials")
        return response

    @app.teardown_request
    def _end_request_log(_exception):
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                _request_id.reset(token)
            except ValueError:  # set in another context (a streamed response): nothing to undo
                pass
