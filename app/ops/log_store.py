"""Keeping the service's own log records in the app-log table without ever getting in the way.

A logging handler must not write on the caller's database connection: the caller may
be inside a transaction (its rollback would take the record with it, and on SQLite
the write would wait on the caller's own write lock). So `AppLogHandler` only queues
a row; one writer thread per process stores queued rows in short transactions on its
own connection. The same thread re-reads the configuration's debug switch every few
seconds, so turning it on takes effect without a restart. Nothing here raises into
the code that logged, and records from the database driver or from the writer
itself are never stored (that would recurse).
"""
import atexit
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import replace

from app.db import database
from app.models import Configuration, new_sys_id

STORE_LEVEL = logging.WARNING        # stored always
DEBUG_STORE_LEVEL = logging.INFO     # stored while the debug switch is on
DEBUG_SWITCH_SECONDS = 5             # how stale the debug switch may be
QUEUE_LIMIT = 10_000                 # rows waiting beyond this are dropped (and counted)
BATCH_SIZE = 200
MESSAGE_LIMIT = 8000
# The database driver logs every query at DEBUG: storing those would store forever.
IGNORED_LOGGERS = ("peewee",)
BROKER_LOGGER = "app"

_COMPLAINT_INTERVAL = 60


def read_debug_switch(db=None):
    """The `debug_logging` flag of the Default configuration (False while the field or row is missing)."""
    field = getattr(Configuration, "debug_logging", None)
    if field is None:
        return False
    query = Configuration.select(field).where(Configuration.name == Configuration.DEFAULT_NAME).tuples()
    row = next(iter(query.execute(db or database)), None)
    return bool(row and row[0])


class DebugSwitch:
    """The effective detail of the log: the broker's loggers at DEBUG and INFO+ stored while on."""

    def __init__(self):
        self.enabled = False
        self.checked_at = None

    @property
    def store_level(self):
        return DEBUG_STORE_LEVEL if self.enabled else STORE_LEVEL

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


class _Writer:
    """The per-process thread that stores queued rows, each batch in its own transaction.

    Rows carry the database they belong to, so a record logged for one app is never
    written into another's database (tests create many apps in one process).
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=QUEUE_LIMIT)
        self._thread = None
        self._pid = None
        self.dropped = 0
        self.failed = 0
        self._complained_at = None
        self._exit_hook = False
        # id(app database) -> (app database, the writer's own database for it)
        self._targets = {}
        self._current = None

    @property
    def thread_ident(self):
        thread = self._thread
        return thread.ident if thread is not None else None

    def ensure_started(self):
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
                return
            if self._pid != os.getpid():
                # Rows queued before a fork belong to the parent process.
                self._queue = queue.Queue(maxsize=QUEUE_LIMIT)
            self._pid = os.getpid()
            if not self._exit_hook:
                # A command that logs a warning and exits at once still stores it.
                atexit.register(self.flush, 2.0)
                self._exit_hook = True
            self._thread = threading.Thread(target=self._run, name="jitbroker-app-log", daemon=True)
            self._thread.start()

    def use_database(self, app_database, settings):
        """Write rows logged while `app_database` is in use through a pool of the writer's own.

        The writer never borrows the app's pool: closing that pool (a new app, a test's
        teardown) must not close a connection under the writer, and the writer's
        transactions must not queue behind the app's in one connection.
        """
        from app.db import create_database

        own = create_database(replace(settings, max_connections=1))
        with self._lock:
            self._targets[id(app_database)] = (app_database, own)
            self._current = id(app_database)

    def _own_database(self, app_database):
        with self._lock:
            entry = self._targets.get(id(app_database))
        return entry[1] if entry is not None and entry[0] is app_database else None

    def _retire_stale_databases(self):
        # Only this thread uses the writer's pools, so only it closes them.
        with self._lock:
            stale = [key for key in self._targets if key != self._current]
            retired = [self._targets.pop(key)[1] for key in stale]
        for own in retired:
            own.close_all()

    def submit(self, db, model, row):
        """Queue `row` for `model`'s table in database `db` (the one in use when it was logged)."""
        try:
            self._queue.put_nowait((db, model, row))
        except queue.Full:
            self.dropped += 1

    def flush(self, timeout=5.0):
        """Wait until every row queued so far is stored (or given up); False on time-out."""
        self.ensure_started()
        work = self._queue
        deadline = time.monotonic() + timeout
        with work.all_tasks_done:
            while work.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                work.all_tasks_done.wait(remaining)
        return True

    def _run(self):
        work = self._queue
        while True:
            try:
                batch = [work.get(timeout=DEBUG_SWITCH_SECONDS)]
            except queue.Empty:
                batch = []
            while batch and len(batch) < BATCH_SIZE:
                try:
                    batch.append(work.get_nowait())
                except queue.Empty:
                    break
            try:
                self._store(batch)
                self._retire_stale_databases()
                if debug_switch.is_due():
                    self._refresh_switch()
            except Exception as error:  # noqa: BLE001 - the thread must outlive any failure
                self._complain(f"the app-log writer failed: {error!r}")
            finally:
                for _ in batch:
                    work.task_done()

    def _store(self, batch):
        groups = {}
        for app_database, model, row in batch:
            db = self._own_database(app_database)
            if db is None:  # logged for an app that is gone (tests), or before logging was set up
                continue
            groups.setdefault((id(db), model), (db, model, []))[2].append(row)
        for db, model, rows in groups.values():
            try:
                with db.connection_context(), db.atomic():
                    model.insert_many(rows).execute(db)
            except Exception as error:  # noqa: BLE001 - e.g. the table is not there before `init`
                self.failed += len(rows)
                self._complain(f"{len(rows)} {model._meta.table_name} row(s) could not be stored: {error!r}")

    def _refresh_switch(self):
        db = self._own_database(database.obj)
        if db is None:
            return
        try:
            with db.connection_context():
                debug_switch.apply(read_debug_switch(db))
        except Exception:  # noqa: BLE001 - keep the current detail until the database answers
            debug_switch.checked_at = time.monotonic()

    def _complain(self, message):
        # Never through logging (that would recurse); at most once a minute.
        now = time.monotonic()
        if self._complained_at is None or now - self._complained_at >= _COMPLAINT_INTERVAL:
            self._complained_at = now
            try:
                sys.__stderr__.write(f"jitbroker: {message}\n")
            except Exception:  # noqa: BLE001
                pass


writer = _Writer()


def flush(timeout=5.0):
    """Store every record logged so far (for tests and before a process exits)."""
    return writer.flush(timeout)


class AppLogHandler(logging.Handler):
    """Queues records at or above the stored level for the writer thread; never raises."""

    def __init__(self, fields):
        super().__init__()
        self._fields = fields
        self._local = threading.local()

    def emit(self, record):
        if getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            if record.levelno < debug_switch.store_level or record.name.startswith(IGNORED_LOGGERS):
                return
            if record.thread == writer.thread_ident:
                return
            db = database.obj
            if db is None:
                return
            fields = self._fields(record)
            from app.ops.models import AppLog

            writer.ensure_started()
            writer.submit(db, AppLog, {
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
        except Exception:  # noqa: BLE001 - logging must never break the code that logged
            pass
        finally:
            self._local.busy = False
