"""SQLite writers take turns on a file lock before SQLite's own (app/db.py WritersTurn).

What must hold: a write transaction holds its turn until it commits or rolls back (a
write nested inside keeps it), a connection handed back never keeps one, and a writer
that cannot get its turn in time still writes, leaving the decision to SQLite's lock.
"""
import fcntl
import os
import threading

import pytest

from app import create_app
from app.db import BrokerSqliteDatabase, WritersTurn, database, write_transaction, writers_turn
from app.migrations import upgrade
from app.models import Configuration


@pytest.fixture
def sqlite_app(tmp_path):
    app = create_app({"database_url": f"sqlite:///{tmp_path}/broker.db", "secret_key": "test-secret-key",
                      "TESTING": True})
    with app.app_context():
        with database.connection_context():
            upgrade()
        yield app
        database.close_all()


def turn_is_taken():
    """True when another open file holds the writers' lock (a probe of our own cannot take it)."""
    probe = os.open(database.obj.writers.path, os.O_RDWR)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(probe)


def test_the_sqlite_database_takes_turns_and_postgresql_has_no_turn(sqlite_app):
    assert isinstance(database.obj, BrokerSqliteDatabase)
    assert database.obj.writers.path.endswith("broker.db-writers.lock")


def test_a_write_transaction_holds_the_turn_until_it_commits(sqlite_app):
    with database.connection_context():
        assert not turn_is_taken()
        with write_transaction():
            Configuration.default()
            assert turn_is_taken()
            with writers_turn():  # a single write inside the transaction
                pass
            assert turn_is_taken(), "a nested write must not end the transaction's turn"
        assert not turn_is_taken()


def test_a_rolled_back_transaction_and_a_returned_connection_leave_no_turn(sqlite_app):
    with database.connection_context():
        with pytest.raises(RuntimeError):
            with write_transaction():
                assert turn_is_taken()
                raise RuntimeError("changed my mind")
        assert not turn_is_taken()
    database.connect()
    database.obj.begin()
    assert turn_is_taken()
    database.close()  # handed back mid-transaction (a request that failed): the turn goes with it
    assert not turn_is_taken()


def test_a_writer_waits_for_the_turn_and_then_writes(sqlite_app):
    app = sqlite_app
    written = threading.Event()

    def other_writer():
        with app.app_context(), database.connection_context():
            with write_transaction():
                Configuration.update(default_category="Later").execute()
        written.set()

    with database.connection_context():
        with write_transaction():
            Configuration.default()
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert not written.wait(0.3), "the other writer must wait while this transaction is open"
        thread.join(10)
    assert written.is_set()
    with database.connection_context():
        assert Configuration.default().default_category == "Later"


@pytest.fixture
def held_turn(sqlite_app):
    """Another process's descriptor holding the writers' lock; calling the fixture's value ends its turn."""
    holder = os.open(database.obj.writers.path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    yield lambda: fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)  # closing lets go too


def test_a_writer_whose_turn_does_not_come_in_time_still_writes(held_turn):
    # held_turn is another process that never lets go.
    database.obj.writers.timeout = 0.2
    with database.connection_context():
        Configuration.default()
        with write_transaction():
            Configuration.update(default_category="Anyway").execute()
        assert Configuration.default().default_category == "Anyway"


def test_a_turn_that_ends_while_the_writer_yields_is_taken_without_a_sleep(held_turn, monkeypatch):
    yields, sleeps = [], []

    def sched_yield():
        yields.append(1)
        if len(yields) == 3:
            held_turn()

    monkeypatch.setattr(os, "sched_yield", sched_yield)
    monkeypatch.setattr("app.db.time.sleep", sleeps.append)
    # A window no preemption of a loaded machine outlasts: the three yields fall inside it.
    monkeypatch.setattr(database.obj.writers, "SPIN_SECONDS", 30)
    database.obj.writers.acquire()
    try:
        # A delivery's turn is far shorter than one sleep: its end is seen at once.
        assert (len(yields), sleeps) == (3, [])
        assert turn_is_taken()  # from this test's probe: the writer holds it
    finally:
        database.obj.writers.release()


def test_a_long_turn_sends_the_waiting_writer_to_sleep_instead_of_spinning(held_turn, monkeypatch):
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        held_turn()

    monkeypatch.setattr("app.db.time.sleep", sleep)
    database.obj.writers.acquire()
    try:
        # Yielding for a millisecond at most, then sleeping between tries: a CPU is not
        # burnt for a transaction that holds the turn for milliseconds.
        assert sleeps == [WritersTurn.POLL_SECONDS]
    finally:
        database.obj.writers.release()
