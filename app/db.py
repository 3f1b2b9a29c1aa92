"""The peewee database: SQLite by default, PostgreSQL by URL, one kept-open connection per thread.

Models bind to `database`, a proxy that `init_database` points at a concrete
database when an app is created, so nothing connects at import time.
"""
import fcntl
import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from urllib.parse import urlparse

import peewee
from playhouse.db_url import parse as parse_database_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

from app.settings import INTAKE_QUEUED

database = peewee.DatabaseProxy()
# Where queued intake's webhook stores deliveries (GroupedInsert): in queued mode
# connections of their own (`create_database(..., for_deliveries=True)`), otherwise `database`.
deliveries = peewee.DatabaseProxy()

# Queued deliveries' SQLite connections leave checkpoints to the scheduler's processor
# (`checkpoint`), so no answer to EPM waits for one; they checkpoint themselves only
# should the WAL pass this many pages (80 MB) because no scheduler runs.
DELIVERIES_WAL_AUTOCHECKPOINT = 20_000

# Errors that mean "the database could not do this now" (locked, restarting,
# unreachable): the caller should try again later, nothing was stored.
UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


def _connection_lost(adapter, conn, idle_seconds, ping_after_seconds):
    """True when a PostgreSQL connection must not be used again: the driver's own flags say
    it is closed or broken, or it sat `ping_after_seconds` or longer and a `SELECT 1` fails."""
    if conn.closed or not adapter.is_connection_reusable(conn):
        return True
    return idle_seconds >= ping_after_seconds and adapter.is_connection_closed(conn)


class BrokerPostgresqlDatabase(PooledPostgresqlDatabase):
    """The connection pool, without a `SELECT 1` round trip for a connection in steady use.

    peewee pings each pooled connection as a request takes it: under load one more
    round trip per request. A connection handed back less than IDLE_PING_SECONDS ago is
    checked by the driver's own flags (closed, transaction status) instead; one that sat
    longer is pinged as before. Should the server drop a busy connection in between (a
    restart), that request's first query fails with 503, which EPM and the scheduler
    retry, and the connection is discarded.
    """

    IDLE_PING_SECONDS = 1.0

    def __init__(self, *args, **kwargs):
        self._returned_at = {}
        super().__init__(*args, **kwargs)

    def _is_closed(self, conn):
        returned_at = self._returned_at.pop(self.conn_key(conn), None)
        idle_seconds = math.inf if returned_at is None else time.monotonic() - returned_at
        return _connection_lost(self._adapter, conn, idle_seconds, self.IDLE_PING_SECONDS)

    def _close(self, conn, close_conn=False):
        if not close_conn:
            self._returned_at[self.conn_key(conn)] = time.monotonic()
        super()._close(conn, close_conn)


class WritersTurn:
    """Writers to one SQLite file take turns on an OS file lock before SQLite's own.

    SQLite's busy handler retries a locked database after sleeping 1, 2, 5, 10 … ms,
    so under concurrent writes (two workers storing deliveries) most of a waiting
    writer's time is sleep, not the other writer's work. A writer holding this lock
    is the only one that asks SQLite for the write lock. Each thread has its own
    descriptor (flock locks belong to an open file, so threads of one process exclude
    each other too). A writer that waits longer than the busy timeout goes on without
    its turn, and SQLite's own lock decides as before: the turn only ever saves time.

    A delivery's turn lasts tens of microseconds, less than one sleep (the kernel adds
    its timer slack, 50 µs, to each). So a waiter first yields its CPU and tries again,
    for up to SPIN_SECONDS: a holder waiting for that CPU runs at once, and the waiter
    takes the turn within microseconds of its end. Only a longer turn (a processor's
    or a job's transaction, milliseconds) sends it to sleep between tries.
    """

    SPIN_SECONDS = 0.001
    POLL_SECONDS = 0.0002

    def __init__(self, path, timeout_seconds):
        self.path = f"{path}-writers.lock"
        self.timeout = timeout_seconds
        self._local = threading.local()

    def _descriptor(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid():  # a forked child opens its own
            local.fd, local.pid, local.depth = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid(), 0
        return local.fd

    def acquire(self):
        """Wait for this thread's turn (at most the timeout); nested calls only count."""
        descriptor = self._descriptor()
        self._local.depth += 1
        if self._local.depth > 1:
            return
        started = time.monotonic()
        spin_until, deadline = started + self.SPIN_SECONDS, started + self.timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                now = time.monotonic()
                if now > deadline:
                    return
                if now < spin_until:
                    os.sched_yield()
                else:
                    time.sleep(self.POLL_SECONDS)

    def release(self, completely=False):
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.depth == 0:
            return
        local.depth = 0 if completely else local.depth - 1
        if local.depth == 0:
            fcntl.flock(local.fd, fcntl.LOCK_UN)

    @contextmanager
    def turn(self):
        self.acquire()
        try:
            yield
        finally:
            self.release()


class _TakesTurns:
    """SQLite whose write transactions (BEGIN IMMEDIATE) first wait for their WritersTurn."""

    def __init__(self, database, *args, **kwargs):
        timeout = kwargs.get("timeout", 5)
        self.writers = WritersTurn(database, timeout) if database and database != ":memory:" else None
        super().__init__(database, *args, **kwargs)

    def writers_turn(self):
        return self.writers.turn() if self.writers else nullcontext()

    def _set_pragmas(self, conn):
        # Seen once in the test suite: a new connection's pragmas failed with "database is
        # locked" at once rather than after the busy timeout (which lock it met is not
        # known). A new connection tries them again until the busy timeout has passed.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return super()._set_pragmas(conn)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def begin(self, lock_type=None):
        if self.writers:
            self.writers.acquire()
        try:
            super().begin(lock_type)
        except BaseException:
            self._end_turn()
            raise

    def commit(self):
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self):
        try:
            super().rollback()
        finally:
            self._end_turn()

    def _close(self, conn, *args, **kwargs):
        # A connection handed back ends any turn its thread still held.
        self._end_turn(completely=True)
        super()._close(conn, *args, **kwargs)

    def _end_turn(self, completely=False):
        if self.writers:
            self.writers.release(completely)


class BrokerSqliteDatabase(_TakesTurns, PooledSqliteDatabase):
    """The broker's SQLite connections: pooled, each thread's handed back at the end of its request."""


class DeliveriesSqliteDatabase(_TakesTurns, peewee.SqliteDatabase):
    """Queued intake's SQLite connections: one per thread, which keeps it for its life.

    Taking a pooled connection and handing it back at the end of each request is the
    pool's bookkeeping in Python, a visible part of a queued delivery's CPU. A SQLite connection is an
    open file with no server that could drop it, so each thread keeps its own:
    `release_connection` leaves it open, and peewee holds it in the thread's local state,
    so it closes when the thread ends (or at `close_pools`, for the calling thread).
    It only ever runs single INSERTs that commit themselves (GroupedInsert).
    """

    kept_by_thread = True


class DeliveriesPostgresqlDatabase(peewee.PostgresqlDatabase):
    """Queued intake's PostgreSQL connections: one per thread, which keeps it between deliveries.

    Like DeliveriesSqliteDatabase, it saves the pool's bookkeeping per delivery. A server
    can drop a connection, so a kept one is checked as BrokerPostgresqlDatabase checks a
    pooled one: by the driver's own flags when it was last used less than
    IDLE_PING_SECONDS ago, by a `SELECT 1` round trip when it sat longer. One that fails
    the check is closed and a new one opened. One that breaks during its INSERT fails that
    delivery over to the view, whose own INSERT finds it broken and opens a new one (or
    answers 503 should the database still be away).
    """

    kept_by_thread = True
    IDLE_PING_SECONDS = BrokerPostgresqlDatabase.IDLE_PING_SECONDS

    def __init__(self, *args, **kwargs):
        self._used = threading.local()
        super().__init__(*args, **kwargs)

    def connect(self, reuse_if_open=False):
        # GroupedInsert calls this before each INSERT: the time between calls is the time it sat.
        now = time.monotonic()
        idle_seconds, self._used.at = now - getattr(self._used, "at", now), now
        if not self.is_closed() and _connection_lost(self._adapter, self._state.conn, idle_seconds,
                                                     self.IDLE_PING_SECONDS):
            self.close()
        return super().connect(reuse_if_open)


def writers_turn(proxy=database):
    """Hold the writers' turn for a single write outside a transaction (SQLite; nothing on PostgreSQL)."""
    concrete = proxy.obj
    return concrete.writers_turn() if isinstance(concrete, _TakesTurns) else nullcontext()


def create_database(settings, for_deliveries=False):
    """A pooled peewee database for `settings.database_url` (sqlite:/// or postgresql://).

    `for_deliveries`: the connections queued intake stores deliveries on. On SQLite they
    leave checkpoints to the processor. With `[intake] synchronous_commit = "off"` their
    commits return before they are on disk: SQLite's `synchronous` NORMAL (in WAL mode a
    commit that a power cut may roll back, never a corrupt file) and PostgreSQL's
    `synchronous_commit` off.
    """
    asynchronous = for_deliveries and settings.intake_synchronous_commit == "off"
    url = settings.database_url
    scheme = urlparse(url).scheme
    options = parse_database_url(url)
    name = options.pop("database")
    if scheme in ("sqlite", "sqlite+pool"):
        if name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        pool = {} if for_deliveries else {"max_connections": settings.max_connections}
        return (DeliveriesSqliteDatabase if for_deliveries else BrokerSqliteDatabase)(
            name,
            **pool,
            # Write transactions take the write lock when they begin, so two writers
            # queue on the busy timeout instead of deadlocking on a lock upgrade.
            lock_type="IMMEDIATE",
            timeout=settings.sqlite_busy_timeout_ms / 1000,
            check_same_thread=False,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": settings.sqlite_busy_timeout_ms,
                "foreign_keys": 1,
                "synchronous": "NORMAL" if asynchronous and settings.sqlite_synchronous.upper() != "OFF"
                else settings.sqlite_synchronous,
                **({"wal_autocheckpoint": DELIVERIES_WAL_AUTOCHECKPOINT} if for_deliveries else {}),
            },
        )
    if scheme in ("postgres", "postgresql", "postgres+pool", "postgresql+pool"):
        if asynchronous:
            options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()
        if for_deliveries:
            return DeliveriesPostgresqlDatabase(name, **options)
        return BrokerPostgresqlDatabase(
            name, max_connections=settings.max_connections, stale_timeout=300, **options
        )
    raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def init_database(settings):
    """Point the `database` and `deliveries` proxies at the database `settings` name; returns `database`'s."""
    concrete = create_database(settings)
    for proxy in _pools():
        previous = proxy.obj
        if previous is not None and not previous.is_closed():
            previous.close_all() if hasattr(previous, "close_all") else previous.close()
    database.initialize(concrete)
    deliveries.initialize(create_database(settings, for_deliveries=True) if settings.intake_mode == INTAKE_QUEUED
                          else concrete)
    return concrete


def _pools():
    """`database`, and `deliveries` when it has connections of its own."""
    return (database, deliveries) if deliveries.obj is not database.obj else (database,)


def close_pools():
    """Close every pooled connection of `database` and `deliveries`."""
    for proxy in _pools():
        proxy.close_all() if hasattr(proxy.obj, "close_all") else proxy.close()


def checkpoint(mode="PASSIVE"):
    """Copy SQLite's WAL into the database file; nothing on PostgreSQL.

    PASSIVE blocks no one: the processor calls it for the deliveries' connections, which
    do not checkpoint themselves. TRUNCATE also empties the WAL, waiting for readers.
    """
    assert mode in ("PASSIVE", "TRUNCATE"), mode
    if is_sqlite():
        database.execute_sql(f"PRAGMA wal_checkpoint({mode})")


def is_sqlite():
    return isinstance(database.obj, peewee.SqliteDatabase)


def write_transaction():
    """A transaction for a multi-row change (BEGIN IMMEDIATE on SQLite)."""
    return database.atomic()


def init_app(app):
    """Hand a request's pooled connection back at its end.

    A request takes its connection from the pool with its first query (peewee
    connects on demand), not before it starts: one that needs no query, such as a
    queued delivery whose row another thread's group insert writes, takes none.
    """

    @app.teardown_appcontext
    def _release(_exception):
        release_connection()


def release_connection():
    """Hand this thread's connections, if it took any, back to their pools; a connection
    its thread keeps (queued intake's, DeliveriesSqliteDatabase and
    DeliveriesPostgresqlDatabase) stays open: the next delivery checks it (`connect`)."""
    for proxy in _pools():
        # A request that failed mid-transaction must not hand the pool (or its next
        # request) a connection with an open transaction.
        if proxy.in_transaction():
            proxy.rollback()
        if not getattr(proxy.obj, "kept_by_thread", False) and not proxy.is_closed():
            proxy.close()


def ping():
    """True when a query reaches the database."""
    try:
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT 1")
        return True
    except UNAVAILABLE_ERRORS:
        return False


class GroupedInsert:
    """Rows that concurrent threads of one process insert into one table, committed together.

    Under gthread workers several requests of one worker may be waiting for a commit at
    once. The first to find no write under way leads: it takes every row waiting then
    (at most `max_rows`), inserts them with one statement and commits them together, so
    the group pays for one turn on the write lock and one fsync (SQLite) or WAL flush
    (PostgreSQL) instead of one each; rows arriving meanwhile form the next group. The
    statement commits itself (no BEGIN and COMMIT around it): a thread that holds the
    write lock must win the GIL back after every call that released it, so the fewer
    calls inside the lock, the shorter other writers wait. Every caller returns only once
    its own row is committed, or raises what stopped it. Should a group fail for any
    reason but the database being unavailable (one row's bad value), nothing of it is
    stored and each row is tried again alone, so only the row at fault fails. Under sync
    workers (gunicorn.conf.py's default) every group is the one row of its request.
    """

    def __init__(self, model, field_names, max_rows=64, into=deliveries):
        # In the model's column order, the order peewee writes an INSERT's columns in.
        self.fields = [field for field in model._meta.sorted_fields if field.name in field_names]
        assert len(self.fields) == len(field_names), field_names
        self.model = model
        self.max_rows = max_rows
        self.database = into
        self._lock = threading.Lock()
        self._waiting = []
        self._writing = False
        self._statements = {}

    def insert(self, values):
        """Insert one row (a dict by field name) and return once it is committed."""
        row = _GroupedRow([field.db_value(values[field.name]) for field in self.fields])
        with self._lock:
            self._waiting.append(row)
            leads = not self._writing
            if not leads:
                row.woken = threading.Event()  # only a row that waits needs one (under sync workers, none)
            self._writing = True
        if not leads:
            # Woken once: its row is committed (or failed), or it leads the next group.
            row.woken.wait()
        if not row.done:
            self._lead()
        if row.error is not None:
            # Each waiting thread raises its own copy: one exception object raised in
            # several threads at once would collect all their tracebacks.
            raise _copy_error(row.error) from row.error

    def _lead(self):
        """Write the waiting rows (this thread's among them), then wake each writer and the next leader."""
        group = []
        try:
            # The connection is taken (or found kept) before the turn, so the turn lasts only the INSERT.
            try:
                self.database.connect(reuse_if_open=True)
            except UNAVAILABLE_ERRORS as error:
                # Tried once: every row of the group is told, without a turn or a second attempt.
                group = self._take_group()
                for row in group:
                    row.error, row.done = error, True
                return
            # The group is taken once the write lock is ours: rows that arrived while
            # another process held it go with this one instead of waiting for a turn.
            with writers_turn(self.database):
                group = self._take_group()
                self._write(group)
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._writing = following is not None
            for row in group:
                if not row.done:  # stopped before its write (an interrupt): it must not wait forever
                    row.error, row.done = RuntimeError("the grouped insert was interrupted"), True
                if row.woken is not None:
                    row.woken.set()
            if following is not None:
                # Every row that arrived while a group was being written has its Event.
                following.woken.set()

    def _take_group(self):
        """The rows waiting now, oldest first, at most `max_rows`; the rest wait for the next group."""
        with self._lock:
            group, self._waiting = self._waiting[:self.max_rows], self._waiting[self.max_rows:]
        return group

    def _write(self, group):
        """Insert `group` (the caller holds the writers' turn), or each of its rows alone should it fail."""
        try:
            # One statement commits itself, all its rows or none: no BEGIN and COMMIT around it.
            self.database.execute_sql(self._statement(len(group)),
                                      [value for row in group for value in row.parameters])
        except UNAVAILABLE_ERRORS as error:
            for row in group:
                row.error = error
        except Exception as error:
            if len(group) == 1:
                group[0].error = error
            else:
                for row in group:
                    self._write([row])
        finally:
            for row in group:
                row.done = True

    def _statement(self, rows):
        key = (type(self.database.obj), rows)
        sql = self._statements.get(key)
        if sql is None:
            # peewee writes each statement once (quoting, placeholders), without the RETURNING
            # it would add on PostgreSQL: nobody reads the new ids.
            sql, params = self.model.insert_many([{field: None for field in self.fields}] * rows).returning().sql()
            assert len(params) == rows * len(self.fields), sql
            self._statements[key] = sql
        return sql


class _GroupedRow:
    __slots__ = ("parameters", "done", "error", "woken")

    def __init__(self, parameters):
        self.parameters = parameters
        self.done = False
        self.error = None
        self.woken = None


def _copy_error(error):
    try:
        return type(error)(*error.args)
    except Exception:  # an exception type that cannot be rebuilt from its args
        return error
