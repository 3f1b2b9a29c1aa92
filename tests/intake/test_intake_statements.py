"""The SQL of one webhook delivery: one transaction, and a fixed number of statements that does
not grow with the tables (the same with one earlier ticket as with a hundred)."""
import threading
from contextlib import contextmanager

from app.db import database, is_sqlite
from app.models import Configuration
from tests import factories

WRITES = ("INSERT", "UPDATE", "DELETE")


@contextmanager
def statements_sent(monkeypatch):
    """Yields a list that fills with what this thread sends the database: ("BEGIN" | "COMMIT" |
    "ROLLBACK" | a statement's SQL, whether a transaction was open)."""
    sent, thread, concrete = [], threading.get_ident(), database.obj

    def recorded(name, real):
        def record(*args, **kwargs):
            if threading.get_ident() == thread:  # not the app-log writer's thread
                sent.append((args[0] if name == "execute_sql" else name.upper(), database.in_transaction()))
            return real(*args, **kwargs)
        return record

    with monkeypatch.context() as patch:
        for name in ("begin", "commit", "rollback", "execute_sql"):
            patch.setattr(concrete, name, recorded(name, getattr(concrete, name)))
        yield sent


def one_delivery(deliver, monkeypatch, request_id):
    with statements_sent(monkeypatch) as sent:
        response = deliver(factories.application_request(request_id))
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
        boundaries = [what for what, _ in sent if what in ("BEGIN", "COMMIT", "ROLLBACK")]
        assert boundaries == ["BEGIN", "COMMIT"], sent
        writes = [(sql, inside) for sql, inside in sent if sql.lstrip().upper().startswith(WRITES)]
        assert writes and all(inside for _, inside in writes), "every write is inside that one transaction"
    assert [sql for sql, _ in with_a_hundred] == [sql for sql, _ in with_one]
    # BEGIN, the RequestId's lock (PostgreSQL), one look-up (the configuration's version, the ticket,
    # updates waiting), the next number, the ticket's 3 rows, the delivery's row, COMMIT
    assert len(with_one) == (8 if is_sqlite() else 9), with_one
    inserts = [sql.split('"')[1] for sql, _ in with_one if sql.startswith("INSERT")]
    assert len(inserts) == len(set(inserts)) == 4, "one INSERT per table"
    assert not any(sql.startswith("SELECT") and Configuration._meta.table_name in sql and "version" not in sql
                   for sql, _ in with_one), "the configuration is kept, only its version is read"


def test_an_update_event_is_one_transaction_that_reads_its_ticket_once(app, deliver, monkeypatch):
    monkeypatch.setattr(app.extensions["account_cache"], "lifetime", 3600)
    deliver(factories.admin_request("req-earlier"))
    deliver(factories.admin_decision("req-earlier"))  # the first update: the configuration is kept from here on
    deliver(factories.admin_request("req-updated"))
    with statements_sent(monkeypatch) as sent:
        assert deliver(factories.admin_decision("req-updated")).status_code == 200

    assert [what for what, _ in sent if what in ("BEGIN", "COMMIT", "ROLLBACK")] == ["BEGIN", "COMMIT"]
    # BEGIN, the RequestId's lock (PostgreSQL), the record with its task and the configuration's version,
    # the decision EPM acknowledged?, the record's new columns, the work note, the task's state, the
    # delivery's row, COMMIT
    assert len(sent) == (8 if is_sqlite() else 9), sent
    reads = [sql for sql, _ in sent if sql.startswith("SELECT")]
    assert not any(sql.startswith('SELECT "t1"."id", "t1"."sys_id", "t1"."sys_class_name"') for sql in reads), \
        "the task is read with its record, not on its own"
