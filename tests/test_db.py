"""app/db.py: a request takes a pooled connection with its first query; a new SQLite connection waits out a lock."""
import fcntl
import os
import sqlite3
import threading
from contextlib import nullcontext
from datetime import datetime, timedelta

import peewee
import pytest

from app import contract, create_app
from app.db import BrokerSqliteDatabase, database, insert_row
from app.models import IncomingRequest, utcnow
from tests.live import free_port
from tests.waiting import wait_until


def test_a_request_that_needs_no_query_takes_no_connection_and_is_served_while_the_database_is_down():
    # Nothing listens on the port: every connection attempt is refused at once.
    app = create_app({"database_url": f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
                      "secret_key": "test-secret-key", "TESTING": True})
    client = app.test_client()

    assert client.get("/openapi.json").status_code == 200
    assert client.get("/healthz").status_code == 503  # the one that asks the database still says so


class _RefusedAtFirst:
    """A SQLite connection whose first `refusals` statements answer "database is locked" at once."""

    def __init__(self, connection, refusals):
        self.connection, self.refusals, self.statements = connection, refusals, []

    def cursor(self):
        return self

    def execute(self, sql, *params):
        self.statements.append(sql)
        if self.refusals:
            self.refusals -= 1
            raise sqlite3.OperationalError("database is locked")
        return self.connection.execute(sql, *params)

    def close(self):
        pass


def test_a_new_sqlite_connection_tries_its_pragmas_again_while_the_database_is_locked(tmp_path):
    db = BrokerSqliteDatabase(str(tmp_path / "broker.db"), timeout=5, pragmas={"journal_mode": "wal"})
    connection = _RefusedAtFirst(sqlite3.connect(tmp_path / "broker.db"), refusals=2)

    db._set_pragmas(connection)

    assert connection.statements == ["PRAGMA journal_mode = wal;"] * 3
    assert connection.connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_new_sqlite_connection_gives_up_on_a_lock_after_the_busy_timeout(tmp_path):
    db = BrokerSqliteDatabase(str(tmp_path / "broker.db"), timeout=0.05, pragmas={"journal_mode": "wal"})
    connection = _RefusedAtFirst(sqlite3.connect(tmp_path / "broker.db"), refusals=10_000)

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db._set_pragmas(connection)
    assert 1 < len(connection.statements) < 10_000


def _sqlite(path, timeout=5):
    database = BrokerSqliteDatabase(str(path), lock_type="IMMEDIATE", timeout=timeout, check_same_thread=False,
                                    pragmas={"journal_mode": "wal", "busy_timeout": int(timeout * 1000)})
    database.execute_sql("CREATE TABLE IF NOT EXISTS t (v INTEGER)")
    return database


def _writers_lock_is_free(database):
    """True when another process could take the writers' lock of `database` now."""
    with open(database.writer_lock_path, "rb") as other:  # its own open file: excluded like another process
        try:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        return True


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_a_sqlite_write_transaction_holds_the_writers_lock_until_it_ends(tmp_path, outcome):
    database = _sqlite(tmp_path / "broker.db")

    with pytest.raises(RuntimeError) if outcome == "rollback" else nullcontext():
        with database.atomic():
            database.execute_sql("INSERT INTO t VALUES (1)")
            assert not _writers_lock_is_free(database)
            if outcome == "rollback":
                raise RuntimeError("undo")

    assert _writers_lock_is_free(database)
    assert database.execute_sql("SELECT count(*) FROM t").fetchone()[0] == (1 if outcome == "commit" else 0)


def test_a_writer_waits_for_the_lock_and_begins_as_soon_as_the_first_commits(tmp_path):
    first, second = _sqlite(tmp_path / "broker.db"), _sqlite(tmp_path / "broker.db")
    order, began = [], threading.Event()

    def write_second():
        with second.atomic():
            order.append("second began")
            second.execute_sql("INSERT INTO t VALUES (2)")
        began.set()

    with first.atomic():
        first.execute_sql("INSERT INTO t VALUES (1)")
        waiting = threading.Thread(target=write_second)
        waiting.start()
        # The second writer queues on the lock file, not on SQLite: its BEGIN is not sent while the first holds it.
        wait_until(lambda: not _writers_lock_is_free(first) and waiting.is_alive())
        order.append("first commits")

    assert began.wait(10)
    waiting.join(10)
    assert order == ["first commits", "second began"]
    assert sorted(v for v, in first.execute_sql("SELECT v FROM t").fetchall()) == [1, 2]


def test_a_begin_that_fails_lets_the_writers_lock_go(tmp_path):
    database = _sqlite(tmp_path / "broker.db", timeout=0.05)
    outsider = sqlite3.connect(str(tmp_path / "broker.db"), isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")  # a writer outside the broker: it knows nothing of the lock file

    with pytest.raises(peewee.OperationalError, match="locked"):
        with database.atomic():
            pass

    assert _writers_lock_is_free(database)
    outsider.execute("ROLLBACK")
    with database.atomic():
        database.execute_sql("INSERT INTO t VALUES (1)")


def test_a_forked_process_opens_the_lock_file_again(tmp_path, monkeypatch):
    database = _sqlite(tmp_path / "broker.db")
    with database.atomic():
        pass
    inherited = database._writer.opened

    monkeypatch.setattr(os, "getpid", lambda: -1)  # what a forked child sees: another process id
    with database.atomic():
        assert database._writer.opened is not inherited
        assert not _writers_lock_is_free(database)
    assert _writers_lock_is_free(database)


def test_an_in_memory_database_has_no_lock_file():
    database = BrokerSqliteDatabase(":memory:", lock_type="IMMEDIATE")

    with database.atomic():
        database.execute_sql("CREATE TABLE t (v INTEGER)")

    assert database.writer_lock_path is None


def test_insert_row_stores_and_returns_the_row_create_would(app, make_ticket):
    task = make_ticket()
    values = {"raw_body": b"{}", "headers": {"User-Agent": "EPM"}, "task": task, "status": contract.INCOMING_ERROR,
              "request_id": "r-1", "processed_at": datetime(2026, 12, 7, 10, 0)}
    with database.atomic():
        inserted = insert_row(IncomingRequest, **values)
    made = IncomingRequest(**values)

    def as_compared(row):
        return {name: value for name, value in row.__data__.items() if name not in ("id", "sys_id", "received_at")}

    assert as_compared(inserted) == as_compared(made)
    assert inserted.task is task and inserted.task_id == task.id and not inserted.is_dirty()
    stored = IncomingRequest.get_by_id(inserted.id)
    assert (stored.sys_id, stored.task_id, stored.headers, bytes(stored.raw_body), stored.processed_at) == (
        inserted.sys_id, task.id, {"User-Agent": "EPM"}, b"{}", datetime(2026, 12, 7, 10, 0))
    assert abs(stored.received_at - utcnow()) < timedelta(minutes=1)
