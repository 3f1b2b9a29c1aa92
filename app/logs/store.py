"""Keeping the service's own log records in the app-log table without ever getting in the way.

A record must not be written on the caller's database connection: the caller may be
inside a transaction (its rollback would take the record with it, and on SQLite the
write would wait on the caller's own write lock). So `StoreHandler`, a `QueueHandler`
on the root logger, only queues the record's row, made on the thread that logged it;
a `QueueListener`'s thread writes each row in its own short transaction on connections
of its own. The same thread re-reads the configuration's debug switch every few
seconds, so turning it on takes effect without a restart. Nothing here raises into the
code that logged, and the database driver's records are never stored (it logs every
query, the store's own included).
"""
import atexit
import logging
import os
import queue
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from logging.handlers import QueueHandler, QueueListener

from app.db import create_database, database
from app.logs.models import AppLog
from app.logs.redaction import redact
from app.models import Configuration, new_sys_id

STORE_LEVEL = logging.WARNING        # stored always
DEBUG_STORE_LEVEL = logging.INFO     # stored while the debug switch is on
DEBUG_SWITCH_SECONDS = 5             # how stale the debug switch may be
QUEUE_LIMIT = 10_000                 # rows waiting beyond this are dropped, with a word on stderr
MESSAGE_LIMIT = 8000
IGNORED_LOGGERS = ("peewee",)
BROKER_LOGGER = "app"
_COMPLAINT_INTERVAL = 60

_queue = queue.Queue(QUEUE_LIMIT)
_listener = None
_parents_listener = None
_hooked = False
_complained_at = None


def record_fields(record):
    """The fields of a record as the JSON line and the app-log table both carry them."""
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string still deserves a line
        message = f"{record.msg!r} {record.args!r}"
    exception = None
    if record.exc_info:
        exception = logging.Formatter().formatException(record.exc_info)
    elif record.exc_text:
        exception = record.exc_text
    return {
        "time": datetime.fromtimestamp(record.created, timezone.utc),
        "level": record.levelname,
        "logger": record.name,
        # Secrets never reach a log line, even from a careless message.
        "message": redact(message),
        "request_id": getattr(record, "request_id", None),
        "ticket": getattr(record, "ticket", None),
        "exception": redact(exception) if exception else None,
    }


def read_debug_switch(db=None):
    """The `debug_logging` flag of the Default configuration (False while the row is missing)."""
    query = (Configuration.select(Configuration.debug_logging)
             .where(Configuration.name == Configuration.DEFAULT_NAME).tuples())
    row = next(iter(query.execute(db or database)), None)
    return bool(row and row[0])


class DebugSwitch:
    """The effective detail of the log: the broker's loggers at DEBUG and INFO+ stored while on."""

    enabled = False
    checked_at = None  # None: read it at the next chance

    def apply(self, enabled):
        self.enabled = bool(enabled)
        self.checked_at = time.monotonic()
        logging.getLogger(BROKER_LOGGER).setLevel(logging.DEBUG if self.enabled else logging.NOTSET)

    def reset(self):
        self.apply(False)
        self.checked_at = None

    def is_due(self):
        return self.checked_at is None or time.monotonic() - self.checked_at >= DEBUG_SWITCH_SECONDS

    def refresh(self, db=None):
        """Read the switch now (on the caller's connection) and apply it; returns whether it is on."""
        self.apply(read_debug_switch(db))
        return self.enabled


debug_switch = DebugSwitch()


def _complain(message):
    # Never through logging (that would recurse); at most once a minute.
    global _complained_at
    now = time.monotonic()
    if _complained_at is None or now - _complained_at >= _COMPLAINT_INTERVAL:
        _complained_at = now
        try:
            sys.__stderr__.write(f"jitbroker: {message}\n")
        except Exception:  # noqa: BLE001
            pass


def _row_record(model, row):
    # What the queue carries: the row and the database in use when it was logged, so a
    # row is never written into another app's database (tests create many in one process).
    return logging.makeLogRecord({"model": model, "row": row, "database": database.obj})


def submit(model, row):
    """Queue `row` for `model`'s table; the listener writes it outside the caller's transaction."""
    try:
        _queue.put_nowait(_row_record(model, row))
    except queue.Full:
        _complain(f"the app-log queue is full: a {model._meta.table_name} row was dropped")


class StoreHandler(QueueHandler):
    """Queues each record at or above the stored level, as its app-log row, for the listener."""

    def __init__(self):
        super().__init__(_queue)

    def filter(self, record):
        stored_level = DEBUG_STORE_LEVEL if debug_switch.enabled else STORE_LEVEL
        return record.levelno >= stored_level and not record.name.startswith(IGNORED_LOGGERS) and super().filter(record)

    def prepare(self, record):
        fields = record_fields(record)
        return _row_record(AppLog, {
            "sys_id": new_sys_id(),
            "created_at": fields["time"].replace(tzinfo=None),
            "level": fields["level"][:16],
            "level_number": record.levelno,
            "logger": fields["logger"][:255],
            "message": fields["message"][:MESSAGE_LIMIT],
            "request_id": (fields["request_id"] or None) and str(fields["request_id"])[:128],
            "ticket": (fields["ticket"] or None) and str(fields["ticket"])[:32],
            "exception": fields["exception"][:MESSAGE_LIMIT] if fields["exception"] else None,
        })

    def handleError(self, record):
        # A full queue (the database has been away a while) or a record that cannot be read.
        _complain(f"a log record was not queued for the app-log table: {sys.exc_info()[1]!r}")


class _RowWriter(logging.Handler):
    """The listener's handler: writes each row in its own transaction on a pool of its own.

    Never the app's pool: closing that (a new app, a test's teardown) must not close a
    connection under the writer, and its transactions must not queue behind the app's.
    """

    def __init__(self, app_database, settings):
        super().__init__()
        self.app_database, self.settings = app_database, settings
        self.own = create_database(replace(settings, max_connections=1))

    def emit(self, record):
        if record.database is not self.app_database:  # logged for an app that is gone, or before logging was set up
            return
        try:
            with self.own.connection_context(), self.own.atomic():
                record.model.insert(record.row).execute(self.own)
        except Exception as error:  # noqa: BLE001
            if not self._table_exists(record.model):
                return  # a new database before its first migration (`init`): the line went to stdout
            _complain(f"a {record.model._meta.table_name} row could not be stored: {error!r}")

    def _table_exists(self, model):
        try:
            with self.own.connection_context():
                return self.own.table_exists(model._meta.table_name)
        except Exception:  # noqa: BLE001 - the database does not answer: that is worth the complaint
            return True


class _Listener(QueueListener):
    """Writes queued rows on its thread and keeps the debug switch fresh, between rows and while idle."""

    def dequeue(self, block):
        while True:
            try:
                return self.queue.get(timeout=DEBUG_SWITCH_SECONDS or None)  # 0 (tests): after each row only
            except queue.Empty:
                self._refresh_switch()

    def handle(self, record):
        self._refresh_switch()
        super().handle(record)

    def _refresh_switch(self):
        if not debug_switch.is_due():
            return
        own = self.handlers[0].own
        try:
            with own.connection_context():
                debug_switch.apply(read_debug_switch(own))
        except Exception:  # noqa: BLE001 - keep the current detail until the database answers
            debug_switch.checked_at = time.monotonic()


def start(app_database, settings):
    """Store the rows logged while `app_database` is in use, replacing an earlier app's listener."""
    global _listener, _hooked
    if not _hooked:
        _hooked = True
        atexit.register(flush, 2.0)  # a command that logs a warning and exits at once still stores it
        os.register_at_fork(after_in_child=_after_fork)
    stop()
    _listener = _Listener(_queue, _RowWriter(app_database, settings))
    _listener.start()


def stop():
    """Store every row queued so far, then stop the listener and close its connections."""
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.stop()
        listener.handlers[0].own.close_all()


def flush(timeout=5.0):
    """Wait until every row queued so far is stored (or given up); False on time-out."""
    with _queue.all_tasks_done:  # what Queue.join waits on, here with a deadline (and no thread at exit)
        return _queue.all_tasks_done.wait_for(lambda: not _queue.unfinished_tasks, timeout)


def _after_fork():
    # The listener's thread stays with the parent; the child (a gunicorn worker started
    # from a preloaded app) gets its own queue (a parent's thread may have held the old
    # one's lock), listener and connections. The parent's stay referenced, never closed
    # here: closing a PostgreSQL connection from the child would end the parent's session.
    global _queue, _listener, _parents_listener
    listener = _parents_listener = _listener
    _listener = None
    _queue = queue.Queue(QUEUE_LIMIT)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, StoreHandler):
            handler.queue = _queue
    if listener is not None:
        start(listener.handlers[0].app_database, listener.handlers[0].settings)
