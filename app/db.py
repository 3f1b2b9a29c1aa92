"""The peewee database: SQLite by default, PostgreSQL by URL; a request's connection goes back at its end.

Models bind to `database`, a proxy that `init_database` points at a concrete
database when an app is created, so nothing connects at import time. Connections
come from peewee's pool: a request takes one with its first query and hands it back
at teardown; the PostgreSQL pool checks a connection as it hands it out (a server
restart leaves no dead connection behind), asking it to answer only when the server sent
it something. Commits wait for the disk: SQLite in WAL mode with `synchronous` FULL (the
`sqlite_synchronous` setting), PostgreSQL with the server's `synchronous_commit` (on unless
the server's configuration turns it off).
"""
import fcntl
import os
import re
import select
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import peewee
import psycopg2.extensions
from playhouse.db_url import parse as parse_database_url
from playhouse.pool import PooledPostgresqlDatabase, PooledSqliteDatabase

database = peewee.DatabaseProxy()

# The error classes that may mean "the database could not do this now" (locked, restarting,
# unreachable): is_unavailable tells which of their errors do. The caller should try again later,
# nothing was stored.
UNAVAILABLE_ERRORS = (peewee.OperationalError, peewee.InterfaceError)
# PostgreSQL's SQLSTATE classes of that kind: connection, transaction rollback (serialization, deadlock),
# insufficient resources, object not in prerequisite state (a lock not available), operator intervention
# (shutdown, a cancelled statement), system and internal errors. Not 54, program limit exceeded: a value
# too large for an index fails again however often it is sent.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "40", "53", "55", "57", "58", "XX")
# SQLite's messages of that kind: the file locked or busy, the disk failing or full, the file not opened.
_UNAVAILABLE_SQLITE_WORDS = ("locked", "busy", "disk", "unable to open", "i/o")


def is_unavailable(error):
    """True when the database error `error` says the database could not do this now, so the same request may
    succeed later (503 with Retry-After); False when it is about what was asked (a value over a limit, a
    missing table: 500), which sending it again never mends. An error the driver gives without a code
    (the connection dropped) is of the first kind."""
    if isinstance(error, peewee.InterfaceError):
        return True
    if not isinstance(error, peewee.OperationalError):
        return False
    cause = error.args[0] if error.args and isinstance(error.args[0], BaseException) else error.__context__
    if isinstance(cause, sqlite3.Error):
        message = str(cause).lower()
        return any(word in message for word in _UNAVAILABLE_SQLITE_WORDS)
    code = getattr(cause, "pgcode", None)
    return code is None or code[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


class _LockFile:
    """One open descriptor of a lock file, closed when the thread or the database holding it goes."""

    def __init__(self, path):
        self.pid, self.fd = os.getpid(), os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __del__(self):
        os.close(self.fd)


# SQLite's lower() folds ASCII letters only; this function every alphabet, as PostgreSQL's lower() does
# under the UTF-8 locales it runs with (fn.jitbroker_lower in a query; SQLite only).
UNICODE_LOWER = "jitbroker_lower"


def _unicode_lower(value):
    return value.lower() if isinstance(value, str) else value


class BrokerSqliteDatabase(PooledSqliteDatabase):
    """The broker's SQLite connections: pooled (init_app hands one back at the end of its request),
    their pragmas retried while the file is locked, write transactions queued on a lock file (begin)."""

    def __init__(self, database, *args, **kwargs):
        super().__init__(database, *args, **kwargs)
        self.register_function(_unicode_lower, UNICODE_LOWER, 1, deterministic=True)
        self._writer = threading.local()
        self.writer_lock_path = None if database == ":memory:" else f"{database}-writer.lock"

    def _set_pragmas(self, conn):
        # Seen once in the test suite: a new connection's pragmas failed with "database is
        # locked" at once rather than after the busy timeout (`PRAGMA journal_mode` does
        # not wait on the busy handler). A new connection tries them again until the busy
        # timeout has passed.
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                return super()._set_pragmas(conn)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _writer_lock(self):
        """This thread's descriptor of the writers' lock file (None for an in-memory database), opened
        again in a forked process: a descriptor inherited across fork shares its lock with the parent."""
        if self.writer_lock_path is None:
            return None
        opened = getattr(self._writer, "opened", None)
        if opened is None or opened.pid != os.getpid():
            opened = self._writer.opened = _LockFile(self.writer_lock_path)
        return opened.fd

    def begin(self, lock_type=None):
        """BEGIN (IMMEDIATE) once this thread holds the writers' lock.

        SQLite's own busy handler makes a writer that finds the write lock taken sleep 1, 2, 5, 10 ms
        and more between tries, while a transaction holds it for a millisecond or two: under load the
        workers sleep with the lock free (docs/performance.md). Writers of this database queue on an
        exclusive flock of one file beside it instead, and the kernel wakes the next as the lock is
        released. A write transaction waits only on the database, and a process that dies lets its
        lock go with its files; a writer outside the broker still meets SQLite's busy timeout."""
        fd = self._writer_lock()
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            return super().begin(lock_type)
        except BaseException:
            self._release_writer_lock()
            raise

    def _release_writer_lock(self):
        opened = getattr(self._writer, "opened", None)
        if opened is not None and opened.pid == os.getpid():
            fcntl.flock(opened.fd, fcntl.LOCK_UN)

    def commit(self):
        try:
            return super().commit()
        finally:
            self._release_writer_lock()

    def rollback(self):
        try:
            return super().rollback()
        finally:
            self._release_writer_lock()


# The statements PostgreSQL parses and plans once per connection (`prepared`): their text, by their SQL as peewee
# writes it, as (name, the text with PostgreSQL's numbered parameters, the number of parameters).
_PREPARABLE = {}
_PARAMETER_MARK = re.compile(r"%%|%s")


def prepared(sql):
    """Mark `sql`, a statement's text written once per process, to be parsed and planned once per connection:
    PostgreSQL prepares it the first time a connection sends it (PREPARE) and runs it by name after that
    (EXECUTE), instead of parsing, analysing and planning the same text on every call (a delivery's statements
    spent about as long there as running). SQLite's driver already keeps each connection's statements
    compiled. Returns `sql`."""
    if sql not in _PREPARABLE:
        count = 0

        def number(mark):
            nonlocal count
            if mark.group() == "%%":
                return "%%"
            count += 1
            return f"${count}"

        numbered = _PARAMETER_MARK.sub(number, sql)
        _PREPARABLE[sql] = (f"jitbroker_{len(_PREPARABLE) + 1}", numbered, count)
    return sql


def as_written(round_trip):
    """The statements of a round trip's SQL as the code wrote them: each prepared statement's run (EXECUTE) as
    its text, without the PREPAREs and the DEALLOCATE that go with them."""
    names = {name: sql for sql, (name, _numbered, _count) in _PREPARABLE.items()}
    written = []
    for statement in round_trip.split("; "):
        if statement.startswith("PREPARE jitbroker_") or statement == "DEALLOCATE ALL":
            continue
        if statement.startswith("EXECUTE jitbroker_"):
            statement = names[statement.split()[1].partition("(")[0]]
        written.append(statement)
    return "; ".join(written)


class _Connection(psycopg2.extensions.connection):
    """A psycopg2 connection that knows which statements its server session has prepared (`prepared`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prepared_statements = set()
        # A round trip that carried a PREPARE failed: which of its statements ran is unknown, so the
        # session's prepared statements go (DEALLOCATE ALL) with the next round trip.
        self.prepared_unknown = False


class BrokerPostgresqlDatabase(PooledPostgresqlDatabase):
    """The broker's PostgreSQL connections: pooled, and a transaction's statements whose answer nobody
    waits for (its BEGIN, a lock, an INSERT whose row is not read back) held and sent with the next
    statement or the COMMIT, in one round trip.

    psycopg2 sends `;`-separated statements as one query message and answers with the last one's
    result; each statement still runs on its own (its own snapshot, in order), so what is held runs
    exactly as if it had been sent alone, only later. A delivery's transaction makes three round
    trips instead of nine (docs/performance.md); the COMMIT is the same COMMIT, answered once the
    server has made the transaction durable."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("connection_factory", _Connection)
        super().__init__(*args, **kwargs)
        self._held = threading.local()

    def _take_held(self):
        held = getattr(self._held, "statements", None) or []
        self._held.statements = []
        return held

    def hold(self, sql, params=()):
        """Send `sql` with this transaction's next statement (or its COMMIT); call inside a transaction."""
        held = getattr(self._held, "statements", None)
        if held is None:
            held = self._held.statements = []
        held.append((sql, tuple(params or ())))

    def _is_closed(self, conn):
        """Whether a pooled connection is dead as the pool hands it out, without a round trip in the common case.

        A healthy connection waiting in the pool has nothing to read; one the server ended (a restart, a
        terminated backend, a failover) holds its last message or the end of the stream. Only then is it asked
        to answer (peewee's SELECT 1), which also tells a harmless message (a setting the server reports)
        from a dead connection. peewee's own check made that round trip on every request."""
        if conn.closed:
            return True
        waiting = select.poll()
        waiting.register(conn.fileno(), select.POLLIN)
        if not waiting.poll(0):
            return False
        return super()._is_closed(conn)

    def begin(self, isolation_level=None):
        if isolation_level or self._isolation_level:
            return super().begin(isolation_level)
        if self.is_closed():
            # Connecting resets this thread's transaction state: it must happen before the
            # transaction is pushed, as when BEGIN is sent at once.
            self.connect()
        self._take_held()  # nothing from before this transaction belongs to it
        return self.hold("BEGIN")

    def execute_sql(self, sql, params=None):
        held = self._take_held()
        statement = sql.lstrip()[:9].upper()
        if statement.startswith("ROLLBACK"):
            held = []  # held since the savepoint it rolls back to: undone unsent
        elif held and statement == "SAVEPOINT":
            # A savepoint's caller may catch its block's errors: what was held before the block
            # must fail outside it, as it would have when sent on its own.
            self._send(held)
            held = []
        return self._send([*held, (sql, tuple(params or ()))])

    def _send(self, statements):
        connection = self.connection()  # a _Connection: __init__ makes it the connection factory
        known = connection.prepared_statements
        parts, values, preparing = [], [], []
        if connection.prepared_unknown:
            parts.append("DEALLOCATE ALL")
            known.clear()
            connection.prepared_unknown = False
        for statement, params in statements:
            entry = _PREPARABLE.get(statement)
            if entry is None or entry[2] != len(params):
                parts.append(statement)
            else:
                name, numbered, count = entry
                if name not in known:
                    parts.append(f"PREPARE {name} AS {numbered}")
                    preparing.append(name)
                parts.append(f"EXECUTE {name}({', '.join(['%s'] * count)})" if count else f"EXECUTE {name}")
            values.extend(params)
        try:
            cursor = self._execute_cursor("; ".join(parts), values)
        except Exception:
            connection.prepared_unknown = connection.prepared_unknown or bool(preparing)
            raise
        known.update(preparing)
        return cursor

    def commit(self):
        held = self._take_held()
        if held == [("BEGIN", ())]:
            return None  # the transaction sent nothing: there is nothing to commit
        if self.is_closed():
            raise peewee.InterfaceError("Cannot commit, database connection not open.")
        return self._send([*held, ("COMMIT", ())])

    def rollback(self):
        held = self._take_held()
        if held and held[0][0] == "BEGIN":
            return None  # the server never saw this transaction
        return super().rollback()


def create_database(settings):
    """A pooled peewee database for `settings.database_url` (sqlite:/// or postgresql://)."""
    url = settings.database_url
    scheme = urlparse(url).scheme
    options = parse_database_url(url)
    name = options.pop("database")
    if scheme in ("sqlite", "sqlite+pool"):
        if name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
        return BrokerSqliteDatabase(
            name,
            max_connections=settings.max_connections,
            # Write transactions take the write lock when they begin, so two writers
            # queue on the busy timeout instead of deadlocking on a lock upgrade.
            lock_type="IMMEDIATE",
            timeout=settings.sqlite_busy_timeout_ms / 1000,
            check_same_thread=False,
            pragmas={
                "journal_mode": "wal",
                "busy_timeout": settings.sqlite_busy_timeout_ms,
                "foreign_keys": 1,
                "synchronous": settings.sqlite_synchronous,
            },
        )
    if scheme in ("postgres", "postgresql", "postgres+pool", "postgresql+pool"):
        return BrokerPostgresqlDatabase(name, max_connections=settings.max_connections, stale_timeout=300, **options)
    raise ValueError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def init_database(settings):
    """Point the `database` proxy at the database `settings` name, closing the one before; returns it."""
    previous = database.obj
    if previous is not None and not previous.is_closed():
        previous.close_all()
    database.initialize(create_database(settings))
    return database.obj


def close_pools():
    """Close every pooled connection."""
    database.close_all()


def is_sqlite():
    return isinstance(database.obj, peewee.SqliteDatabase)


def write_transaction():
    """A transaction for a multi-row change (BEGIN IMMEDIATE on SQLite: writers queue on the busy timeout)."""
    return database.atomic()


def send_with_next(sql, params=()):
    """Run `sql`, whose answer the caller does not need, in the current transaction: on PostgreSQL it
    is sent with the transaction's next statement or its COMMIT (BrokerPostgresqlDatabase), so its
    error, if any, is raised there; elsewhere (SQLite, in process, or outside a transaction) now."""
    concrete = database.obj
    if isinstance(concrete, BrokerPostgresqlDatabase) and concrete.in_transaction():
        concrete.hold(sql, params)
    else:
        database.execute_sql(sql, params)


def write_with_next(query):
    """Run peewee write `query` (an UPDATE, an INSERT) whose row count and keys nobody reads, by send_with_next."""
    send_with_next(*query.sql())


# insert_row's columns and INSERT text, by (model, the row's keys, no key of its own yet, the parameter mark).
_INSERT_SQL = {}


def insert_row(model, **values):
    """Insert one row of `model` as `model.create(**values)` does (its defaults filled in) and return it, with
    the INSERT's SQL text written by peewee once per process and column set.

    For the statements every delivery makes: peewee builds a query's text anew on every call, about
    half of an INSERT's CPU time (docs/performance.md). A model whose `save` does more than store the
    row (Account's) must keep using `create`."""
    row, sql, params = insert_statement(model, values)
    cursor = database.execute_sql(sql, params)
    data, primary_key = row.__data__, model._meta.primary_key
    if primary_key.name not in data or data[primary_key.name] is None:
        data[primary_key.name] = cursor.fetchone()[0] if " RETURNING " in sql else cursor.lastrowid
    return row


def insert_row_unread(model, **values):
    """insert_row for a row whose database-made key nobody reads in this transaction (its `id` stays None):
    its INSERT goes with the transaction's next statement or its COMMIT (send_with_next)."""
    row, sql, params = insert_statement(model, values)
    send_with_next(sql, params)
    return row


def insert_statement(model, values):
    """(the row, its INSERT's SQL text, its parameters): the columns and the text worked out once per set of
    columns the row holds (its defaults and `values`), the text written by peewee."""
    row = model(**values)
    data = row.__data__
    primary_key = model._meta.primary_key
    key = (model, tuple(data), data.get(primary_key.name) is None, database.obj.param)
    found = _INSERT_SQL.get(key)
    if found is None:
        fields = [field for field in model._meta.sorted_fields
                  if field.name in data and not (field is primary_key and data[field.name] is None)]
        found = _INSERT_SQL[key] = (fields, prepared(
            model.insert_many([[data[field.name] for field in fields]], fields=fields).sql()[0]))
    fields, sql = found
    row._dirty.clear()
    return row, sql, [field.db_value(data[field.name]) for field in fields]


def init_app(app):
    """Hand a request's pooled connection back at its end.

    A request takes its connection from the pool with its first query (peewee
    connects on demand), not before it starts: one that needs no query takes none.
    """

    @app.teardown_appcontext
    def _release(_exception):
        release_connection()


def release_connection():
    """Hand this thread's connection, if it took one, back to the pool."""
    # A request that failed mid-transaction must not hand the pool (or its next
    # request) a connection with an open transaction.
    if database.in_transaction():
        database.rollback()
    if not database.is_closed():
        database.close()


def ping():
    """True when a query reaches the database."""
    try:
        database.connect(reuse_if_open=True)
        database.execute_sql("SELECT 1")
        return True
    except UNAVAILABLE_ERRORS:
        return False


# The SQL text of update_row_unread's UPDATEs, by (model, columns, the database's parameter mark).
_UPDATE_SQL = {}


def update_row_unread(model, row_id, **values):
    """`model.update(**values).where(model.id == row_id)` by send_with_next (nobody reads its row count), with
    its SQL text written once per process and column set: peewee would write it anew on every call, inside
    the write transaction the other writers queue behind."""
    fields = [model._meta.fields[name] for name in values]
    param = database.obj.param
    key = (model, tuple(values), param)
    sql = _UPDATE_SQL.get(key)
    if sql is None:
        left, right = database.obj.quote

        def quote(name):
            return f"{left}{name}{right}"

        assignments = ", ".join(f"{quote(field.column_name)} = {param}" for field in fields)
        primary_key = model._meta.primary_key
        sql = _UPDATE_SQL[key] = prepared(f"UPDATE {quote(model._meta.table_name)} SET {assignments} "
                                          f"WHERE {quote(primary_key.column_name)} = {param}")
    send_with_next(sql, [field.db_value(value) for field, value in zip(fields, values.values())] + [row_id])


# prepared_select's queries, by (the caller's key, the database's class).
_PREPARED = {}
_TEXT_SLOT = "\x00slot {}\x00"
_NUMBER_SLOT = -7_340_000_000_000_000


def prepared_select(key, build, *values):
    """The rows (as the query reads them: models, joined models) of the SELECT `build(*slots)` makes, run
    with `values` in its slots, as a list; its SQL text written by peewee once per process and kind of
    database, and how a row becomes models worked out once too.

    Each value is text or an integer as its column stores it (passed to the database unconverted), and
    `build` compares each slot to a column (`Model.column == slot`). For the reads inside a delivery's
    write transaction, where writing a join's SQL took longer than the database took to answer it."""
    cache_key = (key, type(database.obj))
    entry = _PREPARED.get(cache_key)
    if entry is None:
        slots = [_NUMBER_SLOT - index if isinstance(value, int) else _TEXT_SLOT.format(index)
                 for index, value in enumerate(values)]
        query = build(*slots)
        sql, params = query.sql()
        positions = {index: slots.index(param) for index, param in enumerate(params) if param in slots}
        if sorted(set(positions.values())) != list(range(len(slots))):
            raise ValueError(f"prepared_select {key!r}: a slot is missing from its query's parameters")
        entry = _PREPARED[cache_key] = {"query": query, "sql": prepared(sql), "params": params,
                                        "positions": positions}
    bound = list(entry["params"])
    for index, slot in entry["positions"].items():
        bound[index] = values[slot]
    cursor = database.execute_sql(entry["sql"], bound)
    rows = cursor.fetchall()
    if not rows:
        return []
    wrapper = entry["query"]._get_cursor_wrapper(cursor)
    reading = entry.get("reading")
    if reading is None:
        # What the wrapper works out from the query and the cursor's columns before its first row: the same
        # for every run of the same SQL, and only read while rows are made.
        before = set(vars(wrapper))
        wrapper.initialize()
        reading = entry["reading"] = {name: value for name, value in vars(wrapper).items()
                                      if name not in before}
    else:
        vars(wrapper).update(reading)
    return [wrapper.process_row(row) for row in rows]
