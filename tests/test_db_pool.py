"""The PostgreSQL pool checks a connection as it hands it out (peewee's pool, app/db.py):
one the server dropped while it sat in the pool is replaced without anyone seeing it, and one
the server sent nothing is handed out without a round trip."""
import select

import psycopg2

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


def round_trips_at_hand_out(connection):
    """The queries `connection`, back in the pool, is asked as the pool hands it out again (peewee asks on a cursor)."""
    asked, cursor = [], connection.cursor

    def counted(*args, **kwargs):
        asked.append(1)
        return cursor(*args, **kwargs)

    connection.cursor = counted
    database.connect()
    assert database.connection() is connection, "the pooled connection is handed out again"
    del connection.cursor
    database.close()
    return len(asked)


def test_a_healthy_pooled_connection_is_handed_out_without_a_round_trip(postgres_app):
    database.connect()
    connection = database.connection()
    database.close()
    assert round_trips_at_hand_out(connection) == 0


def test_a_pooled_connection_the_server_sent_a_message_is_asked_to_answer_and_kept_when_it_does(postgres_app,
                                                                                                postgres_url):
    database.connect()
    connection = database.connection()
    database.execute_sql("LISTEN jitbroker_pool_test")
    database.close()
    other = psycopg2.connect(postgres_url)  # a notification stays within its database
    other.autocommit = True
    with other.cursor() as cursor:
        cursor.execute("NOTIFY jitbroker_pool_test")
    other.close()
    assert select.select([connection], [], [], 5)[0], "the notification reached the pooled connection"
    assert round_trips_at_hand_out(connection) == 1
