"""Queued deliveries that a worker's threads store at the same moment share one commit.

What EPM relies on: each delivery is answered only once its own row is committed,
a row that cannot be stored fails alone, and a database that is unavailable gets
every waiting delivery a 503 (which EPM retries) with nothing half-stored.
"""
import threading
import time

import peewee
import pytest

from app import contract
from app.db import GroupedInsert, database, deliveries
from app.intake import service
from app.models import IncomingRequest, QueuedDelivery, new_sys_id, utcnow
from tests import factories
from tests.conftest import WEBHOOK


@pytest.fixture
def app_settings():
    return {"intake_mode": "queued"}


def values(sys_id=None, request_id="req-grouped"):
    return {"sys_id": sys_id or new_sys_id(), "raw_body": b"{}", "content_type": "application/json", "headers": {},
            "source_address": "127.0.0.1", "received_at": utcnow(), "event_type": "URM_Native_Ticket_Created",
            "request_id": request_id, "status": contract.INCOMING_RECEIVED, "queued": True}


FIELDS = tuple(values())


class HeldStatements:
    """Counts the INSERT statements a GroupedInsert runs, and holds the first until released.

    With `fail_after_first`, every INSERT after the first raises that error instead of running.
    """

    def __init__(self, monkeypatch, fail_after_first=None, fields_per_row=len(FIELDS)):
        self.statements = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()
        concrete = deliveries.obj
        real_execute = concrete.execute_sql

        def execute_sql(sql, params=None, *args, **kwargs):
            if sql.startswith("INSERT INTO"):
                self.statements.append(len(params) // fields_per_row)
                if len(self.statements) == 1:
                    self.first_started.set()
                    assert self.release_first.wait(10)
                elif fail_after_first is not None:
                    raise fail_after_first
            return real_execute(sql, params, *args, **kwargs)

        monkeypatch.setattr(concrete, "execute_sql", execute_sql)


def in_threads(app, count, work):
    """Run work(i) in `count` threads, each with the app context and a connection as a request has."""
    outcomes = [None] * count

    def run(index):
        with app.app_context(), database.connection_context():
            try:
                outcomes[index] = work(index)
            except Exception as error:  # the test reads it
                outcomes[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    return threads, outcomes


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def start_behind_a_held_write(held, threads, grouped):
    """Start the first thread and hold its write; start the rest and wait until all of them wait behind it."""
    threads[0].start()
    assert held.first_started.wait(10)
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: len(grouped._waiting) == len(threads) - 1)


def release(held, threads):
    held.release_first.set()
    for thread in threads:
        thread.join(10)


def stored_sys_ids():
    return {sys_id for (sys_id,) in IncomingRequest.select(IncomingRequest.sys_id).tuples()}


def test_rows_that_wait_behind_a_write_are_committed_together_and_each_caller_returns_once_its_row_is(
        app, monkeypatch):
    grouped = GroupedInsert(IncomingRequest, FIELDS)
    held = HeldStatements(monkeypatch)
    ids = [new_sys_id() for _ in range(5)]
    threads, outcomes = in_threads(app, 5, lambda index: grouped.insert(values(ids[index])) or "stored")

    start_behind_a_held_write(held, threads, grouped)
    # Nobody has returned while the first write is held: not even the four not in it.
    assert outcomes == [None] * 5
    release(held, threads)

    assert outcomes == ["stored"] * 5
    assert held.statements == [1, 4]  # the lone first row, then the four that waited, in one statement
    assert stored_sys_ids() == set(ids)


def test_a_row_that_cannot_be_stored_fails_alone_and_the_rest_of_its_group_is_stored(app, monkeypatch):
    grouped = GroupedInsert(IncomingRequest, FIELDS)
    held = HeldStatements(monkeypatch)
    taken = new_sys_id()
    ids = [new_sys_id(), new_sys_id(), taken, new_sys_id()]
    # The first row takes `taken`; in the next group the row reusing it breaks the unique sys_id.
    row_ids = [taken] + ids
    threads, outcomes = in_threads(app, 5, lambda index: grouped.insert(values(row_ids[index])) or "stored")
    start_behind_a_held_write(held, threads, grouped)
    release(held, threads)

    assert [outcome == "stored" for outcome in outcomes] == [True, True, True, False, True]
    assert isinstance(outcomes[3], peewee.IntegrityError)
    assert held.statements == [1, 4, 1, 1, 1, 1]  # the group failed whole, then each row alone
    assert stored_sys_ids() == set(row_ids)
    assert IncomingRequest.select().count() == 4


def test_an_unavailable_database_fails_every_row_of_the_group_and_none_is_tried_again_alone(app, monkeypatch):
    grouped = GroupedInsert(IncomingRequest, FIELDS)
    held = HeldStatements(monkeypatch, fail_after_first=peewee.OperationalError("database is locked"))
    threads, outcomes = in_threads(app, 5, lambda index: grouped.insert(values()) or "stored")
    start_behind_a_held_write(held, threads, grouped)
    release(held, threads)

    assert outcomes[0] == "stored"
    assert all(isinstance(outcome, peewee.OperationalError) for outcome in outcomes[1:])
    assert len({id(outcome) for outcome in outcomes[1:]}) == 4  # each thread raised its own copy
    assert held.statements == [1, 4]
    assert IncomingRequest.select().count() == 1


def test_a_connection_that_cannot_be_opened_fails_the_row_once_and_leaves_nothing_waiting(app, monkeypatch):
    grouped = GroupedInsert(IncomingRequest, FIELDS)
    attempts = []

    def refused(*_args, **_kwargs):
        attempts.append(1)
        raise peewee.OperationalError("unable to open database file")

    monkeypatch.setattr(deliveries.obj, "connect", refused)
    with pytest.raises(peewee.OperationalError):
        grouped.insert(values(request_id="req-refused"))
    monkeypatch.undo()
    assert len(attempts) == 1, "a server that is down is not asked twice for one delivery"

    # The refused row's caller has its error: no later group may store it behind its back.
    assert grouped._waiting == [] and not grouped._writing
    grouped.insert(values(request_id="req-after"))
    assert [row.request_id for row in IncomingRequest.select()] == ["req-after"]


def test_a_delivery_the_unavailable_database_cannot_store_is_answered_503_and_nothing_is_stored(
        app, deliver, api_account, monkeypatch):
    concrete = deliveries.obj
    real_execute = concrete.execute_sql

    def unavailable(sql, params=None, *args, **kwargs):
        if sql.startswith("INSERT INTO"):
            raise peewee.OperationalError("database is locked")
        return real_execute(sql, params, *args, **kwargs)

    deliver(factories.application_request("req-before"))  # credentials read and remembered
    monkeypatch.setattr(concrete, "execute_sql", unavailable)
    response = deliver(factories.application_request("req-grouped-503"))

    assert response.status_code == 503
    monkeypatch.setattr(concrete, "execute_sql", real_execute)
    assert [row.request_id for row in QueuedDelivery.select()] == ["req-before"]


def test_concurrent_webhook_deliveries_each_get_their_own_stored_row(app, api_auth, monkeypatch):
    held = HeldStatements(monkeypatch, fields_per_row=len(service._queued_rows.fields))

    def post(index):
        with app.test_client() as client:
            response = client.post(WEBHOOK, json=factories.application_request(f"req-burst-{index}"), headers=api_auth)
            return response.status_code, response.json["result"]["incoming_request"]

    threads = [threading.Thread(target=lambda index=index: outcomes.__setitem__(index, post(index)))
               for index in range(6)]
    outcomes = [None] * 6
    start_behind_a_held_write(held, threads, service._queued_rows)
    release(held, threads)

    assert [status for status, _sys_id in outcomes] == [200] * 6
    assert held.statements == [1, 5]
    rows = {row.sys_id: row for row in QueuedDelivery.select()}
    assert set(rows) == {sys_id for _status, sys_id in outcomes}
    assert sorted(row.request_id for row in rows.values()) == sorted(f"req-burst-{index}" for index in range(6))
