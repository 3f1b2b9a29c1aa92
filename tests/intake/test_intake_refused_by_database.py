"""A delivery the database refuses for what it holds is a 500, stored as an error with its body for ops to replay;
only a database that cannot answer now gets EPM a 503 to send it again (app/db.is_unavailable)."""
import json
import sqlite3

import peewee
import psycopg2
import pytest

from app import contract
from app.db import database, is_unavailable
from app.models import AdminTicket, IncomingRequest, Task
from tests import factories


def _wrapped(error, kind=peewee.OperationalError):
    """`error` as peewee raises it: its own class around the driver's error."""
    try:
        try:
            raise error
        except Exception as driver_error:  # noqa: BLE001
            raise kind(driver_error) from None
    except kind as wrapped:
        return wrapped


class _PostgresError(psycopg2.OperationalError):
    def __init__(self, pgcode):
        super().__init__(f"SQLSTATE {pgcode}")
        self._code = pgcode

    @property
    def pgcode(self):
        return self._code


@pytest.mark.parametrize("error, unavailable", [
    (_wrapped(sqlite3.OperationalError("database is locked")), True),
    (_wrapped(sqlite3.OperationalError("disk I/O error")), True),
    (_wrapped(sqlite3.OperationalError("no such table: task")), False),
    (_wrapped(sqlite3.OperationalError("too many SQL variables")), False),
    (_wrapped(psycopg2.OperationalError("connection to server at 127.0.0.1 failed")), True),
    (_wrapped(_PostgresError("57P01")), True),   # the server is shutting down
    (_wrapped(_PostgresError("40P01")), True),   # a deadlock: the next try may pass
    (_wrapped(_PostgresError("53100")), True),   # the disk is full
    (_wrapped(_PostgresError("54000")), False),  # an index row too large: fails however often it is sent
    (_wrapped(psycopg2.InterfaceError("connection already closed"), peewee.InterfaceError), True),
    (_wrapped(psycopg2.DataError("invalid input"), peewee.DataError), False),
], ids=["locked", "sqlite disk", "no such table", "sqlite limit", "no connection", "shutdown", "deadlock",
        "disk full", "program limit", "closed", "data"])
def test_only_what_may_pass_when_sent_again_is_unavailable(error, unavailable):
    assert is_unavailable(error) is unavailable


def test_a_delivery_the_database_refuses_for_its_content_is_a_500_kept_with_its_body(app, deliver):
    table = AdminTicket._meta.table_name
    if app.extensions["settings"].database_url.startswith("sqlite"):
        # A refusal of SQLite's operational kind that is not about its state: the statement names a table no more.
        database.execute_sql(f'ALTER TABLE "{table}" RENAME TO "{table}_elsewhere"')
        undo = f'ALTER TABLE "{table}_elsewhere" RENAME TO "{table}"'
    else:
        # What a ticket's index entry over PostgreSQL's limit raises, from the ticket's own INSERT.
        database.execute_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                             "RAISE EXCEPTION 'index row too large' "
                             "USING ERRCODE = 'program_limit_exceeded'; END $$ LANGUAGE plpgsql")
        database.execute_sql(f'CREATE TRIGGER refuse BEFORE INSERT ON "{Task._meta.table_name}" FOR EACH ROW '
                             "EXECUTE FUNCTION refuse()")
        undo = f'DROP TRIGGER refuse ON "{Task._meta.table_name}"; DROP FUNCTION refuse()'
    try:
        answer = deliver(factories.admin_request("refused-1"))
    finally:
        database.execute_sql(undo)

    assert answer.status_code == 500
    assert "Retry-After" not in answer.headers
    (stored,) = IncomingRequest.select().where(IncomingRequest.request_id == "refused-1")
    assert stored.status == contract.INCOMING_ERROR and b"refused-1" in bytes(stored.raw_body)


def test_a_delivery_its_reading_fails_on_unforeseen_is_a_500_kept_with_its_body(app, deliver, monkeypatch):
    from app.intake import schemas

    def unforeseen(value):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(schemas, "parse_timestamp", unforeseen)
    monkeypatch.setitem(app.config, "TESTING", False)  # answered as in production, not raised into the test
    body = factories.admin_request(request_id="adm-unforeseen")
    response = deliver(body)
    assert response.status_code == 500
    [row] = IncomingRequest.select()
    assert (row.status, row.event_type, row.request_id) == (
        contract.INCOMING_ERROR, contract.ADMIN_TICKET_CREATED.name, "adm-unforeseen")
    assert "OverflowError: date value out of range" in row.error
    assert json.loads(bytes(row.raw_body)) == body, "kept with its body, for a replay once mended"


def test_a_delivery_its_parsing_fails_on_unforeseen_is_a_500_kept_with_its_body(app, deliver, monkeypatch):
    from app.intake import schemas

    def unforeseen(value):
        raise OverflowError("unforeseen")

    monkeypatch.setattr(schemas, "storable", unforeseen)
    monkeypatch.setitem(app.config, "TESTING", False)  # answered as in production, not raised into the test
    raw = json.dumps(factories.admin_request(request_id="adm-unparsed", Reason="caf\u00e9")).encode()
    response = deliver(raw)
    assert response.status_code == 500
    [row] = IncomingRequest.select()
    assert row.status == contract.INCOMING_ERROR
    assert "OverflowError: unforeseen" in row.error
    assert bytes(row.raw_body) == raw, "kept with its body, for a replay once mended"
