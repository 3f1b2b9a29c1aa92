"""The PostgreSQL pool checks a connection as it hands it out (peewee's pool, app/db.py):
one the server dropped while it sat in the pool is replaced without anyone seeing it."""
import pytest

from app import create_app
from app.db import database
from tests.conftest import _admin_connection


def backend_pid():
    return database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]


def pooled_connection_dropped_by_the_server():
    """Use a pooled connection, hand it back, then have the server end it; returns its backend pid."""
    database.connect()
    pid = backend_pid()
    database.close()
    admin = _admin_connection()
    with admin.cursor() as cursor:
        # Waits (up to 5 s) until the backend is gone, so the pool meets a dead connection.
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    admin.close()
    return pid


def test_a_pooled_connection_the_server_dropped_is_replaced_when_handed_out(postgres_app):
    dropped = pooled_connection_dropped_by_the_server()
    database.connect()
    assert backend_pid() != dropped
    database.close()
