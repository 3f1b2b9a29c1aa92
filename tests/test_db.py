"""app/db.py: a request takes a pooled connection with its first query; a new SQLite connection waits out a lock."""
import sqlite3

import pytest

from app import create_app
from app.db import BrokerSqliteDatabase
from tests.live import free_port


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
