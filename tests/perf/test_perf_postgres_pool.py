"""The PostgreSQL pool pings only a connection that sat unused (app/db.py BrokerPostgresqlDatabase).

A connection in steady use is handed out on the driver's own flags (no SELECT 1 round
trip per request); one handed back longer ago than IDLE_PING_SECONDS is pinged, so a
connection the server dropped while it sat idle is replaced without anyone seeing it.
"""
import peewee
import pytest

from app import create_app
from app.db import database
from tests.conftest import _admin_connection


@pytest.fixture
def pg_app(postgres_url):
    app = create_app({"database_url": postgres_url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        yield app
        database.close_all()


def backend_pid():
    return database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def pooled_connection_dropped_by_the_server():
    """Use a pooled connection, hand it back, then have the server end it; returns its backend pid."""
    database.connect()
    pid = backend_pid()
    database.close()
    admin = _admin_connection()
    with admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    admin.close()
    return pid


def test_a_connection_that_sat_idle_is_pinged_and_replaced_when_the_server_dropped_it(pg_app):
    database.obj.IDLE_PING_SECONDS = 0
    dropped = pooled_connection_dropped_by_the_server()
    database.connect()
    assert backend_pid() != dropped
    database.close()


def test_a_connection_in_steady_use_is_not_pinged_its_next_query_fails_once_and_it_is_discarded(pg_app):
    database.obj.IDLE_PING_SECONDS = 3600
    dropped = pooled_connection_dropped_by_the_server()
    database.connect()
    with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
        backend_pid()
    database.close()
    database.connect()
    assert backend_pid() != dropped
    database.close()
