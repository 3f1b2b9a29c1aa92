"""The SQL of one webhook delivery: one transaction, and a fixed number of statements that does
not grow with the tables (the same with one earlier ticket as with a hundred)."""
import re
import threading
from contextlib import contextmanager

from app.db import as_written, database, is_sqlite
from app.models import Configuration
from tests import factories

WRITES = ("INSERT", "UPDATE", "DELETE")


class _RecordingCursor:
    """A driver cursor that notes the SQL of each call to `execute` in `sent`, its prepared statements as written."""

    def __init__(self, cursor, sent):
        self._cursor, self._sent = cursor, sent

    def execute(self, sql, params=()):
        self._sent.append(as_written(sql))
        return self._cursor.execute(sql, params)

    def __iter__(self):
        return iter(self._cursor)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@contextmanager
def statements_sent(monkeypatch):
    """Yields a list that fills with what this thread hands the database driver, one item per call: on
    PostgreSQL a call is one round trip to the server (it may carry several `; `-separated statements),
    on SQLite one statement."""
    sent, thread, concrete = [], threading.get_ident(), database.obj
    real_cursor = concrete.cursor

    def cursor(*args, **kwargs):
        opened = real_cursor(*args, **kwargs)
        # Not the app-log writer's thread.
        return _RecordingCursor(opened, sent) if threading.get_ident() == thread else opened

    with monkeypatch.context() as patch:
        patch.setattr(concrete, "cursor", cursor)
        yield sent


def statements(sent):
    """Each statement of the calls `sent`, in the order the database runs them."""
    return [statement for call in sent for statement in call.split("; ")]


def boundaries(sql):
    """The transaction's BEGIN (SQLite's BEGIN IMMEDIATE too), COMMIT and ROLLBACK among statements `sql`."""
    return [statement.split()[0] for statement in sql if statement.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")]


def one_delivery(deliver, monkeypatch, request_id):
    with statements_sent(monkeypatch) as sent:
        response = deliver(factories.application_request(request_id))
        response.close()  # and what the worker does after the answer, before its next request
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["result"]["ticket"], "the answer names the ticket the delivery made"
    return sent


def test_one_delivery_is_one_transaction_of_a_fixed_number_of_statements(app, deliver, monkeypatch):
    # The account read stays cached through the test: its one-second lifetime could end between two
    # deliveries on a busy machine and add the account's reads to one of them.
    monkeypatch.setattr(app.extensions["account_cache"], "lifetime", 3600)
    deliver(factories.application_request("req-first"))  # the credentials' first check, the counters
    with_one = one_delivery(deliver, monkeypatch, "req-with-one")
    for index in range(100):
        assert deliver(factories.application_request(f"req-earlier-{index}")).status_code == 200
    with_a_hundred = one_delivery(deliver, monkeypatch, "req-with-a-hundred")

    for sent in (with_one, with_a_hundred):
        sql = statements(sent)
        assert boundaries(sql) == ["BEGIN", "COMMIT"], sent
        assert sql[0].startswith("BEGIN") and sql[-1] == "COMMIT", "every write is inside that one transaction"
    assert with_a_hundred == with_one
    # BEGIN, the RequestId's lock (PostgreSQL), one look-up (the configuration's version, the ticket,
    # updates waiting, whether retention deleted its ticket), the next number and the task (one statement
    # on PostgreSQL), the JIT record, the work note, the delivery's row, COMMIT
    sql = statements(with_one)
    assert len(sql) == 8, with_one
    if not is_sqlite():
        # Round trips: BEGIN with the lock and the look-up; the number with the task; the JIT record, the
        # note and the delivery's row with the COMMIT.
        assert len(with_one) == 3, with_one
        assert "pg_advisory_xact_lock" in with_one[0] and with_one[-1].endswith("COMMIT"), with_one
    inserts = [table for statement in sql for table in re.findall(r'INSERT INTO "([^"]+)"', statement)]
    assert len(inserts) == len(set(inserts)) == 4, "one INSERT per table"
    configuration_reads = [statement for statement in sql if statement.startswith("SELECT")
                           and Configuration._meta.table_name in statement and "version" not in statement]
    assert not configuration_reads, "the configuration is kept, only its version is read"


def test_an_update_event_is_one_transaction_that_reads_its_ticket_once(app, deliver, monkeypatch):
    monkeypatch.setattr(app.extensions["account_cache"], "lifetime", 3600)
    deliver(factories.admin_request("req-earlier"))
    deliver(factories.admin_decision("req-earlier"))  # the first update: the configuration is kept from here on
    deliver(factories.admin_request("req-updated"))
    with statements_sent(monkeypatch) as sent:
        response = deliver(factories.admin_decision("req-updated"))
        response.close()
    assert response.status_code == 200

    sql = statements(sent)
    assert boundaries(sql) == ["BEGIN", "COMMIT"], sent
    assert sql[0].startswith("BEGIN") and sql[-1] == "COMMIT", sent
    # BEGIN, the RequestId's lock (PostgreSQL), the record with its task, the configuration's version and
    # the decision EPM acknowledged, the record's new columns, the work note, the task's state, the
    # delivery's row, COMMIT
    assert len(sql) == (7 if is_sqlite() else 8), sent
    if not is_sqlite():
        # Round trips: BEGIN with the lock and the record; the record's new columns, the note, the task's
        # state and the delivery's row with the COMMIT.
        assert len(sent) == 2, sent
    reads = [statement for statement in sql if statement.startswith("SELECT")]
    assert not any(statement.startswith('SELECT "t1"."id", "t1"."sys_id", "t1"."sys_class_name"')
                   for statement in reads), "the task is read with its record, not on its own"
