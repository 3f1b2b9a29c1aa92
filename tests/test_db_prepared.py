"""Statements of a delivery's write transaction whose SQL text is written once per process (app/db.py)."""
from datetime import datetime

import peewee
import pytest
from peewee import JOIN

from app.db import database, prepared, prepared_select, update_row_unread, write_transaction
from app.models import Account, Task


def _accounts_named(username):
    return prepared_select("accounts named", lambda name: Account.select().where(Account.username == name),
                           username)


def test_a_prepared_select_answers_each_call_with_its_own_values(app, approver, admin):
    assert [account.username for account in _accounts_named(approver.username)] == [approver.username]
    assert [account.role for account in _accounts_named(admin.username)] == [admin.role]
    assert list(_accounts_named("nobody")) == []


def test_a_prepared_select_reads_joined_rows_as_the_query_does(app, ticket, approver, admin):
    def build(number, username):
        return (Task.select(Task, Account).join(Account, JOIN.LEFT_OUTER, on=(Account.username == username))
                .where(Task.number == number))

    found = list(prepared_select("joined", build, ticket.number, approver.username))
    again = list(prepared_select("joined", build, ticket.number, admin.username))

    assert [(task.id, task.account.username) for task in found] == [(ticket.id, approver.username)]
    assert [(task.id, task.account.role) for task in again] == [(ticket.id, admin.role)]
    assert list(prepared_select("joined", build, "INC9999999", admin.username)) == []


def test_a_prepared_select_refuses_a_query_that_leaves_a_value_out(app):
    with pytest.raises(ValueError, match="a slot is missing"):
        prepared_select("leaves one out", lambda name, _ignored: Account.select().where(Account.username == name),
                        "someone", 5)


def test_an_update_by_id_changes_that_row_only_with_each_value_stored_as_its_field_stores_it(app, make_ticket):
    first, second = make_ticket(), make_ticket()
    closed = datetime(2026, 1, 2, 3, 4, 5, 678000)

    with write_transaction():
        update_row_unread(Task, first.id, state=7, closed_at=closed)

    assert (Task.get_by_id(first.id).state, Task.get_by_id(first.id).closed_at) == (7, closed)
    assert Task.get_by_id(second.id).closed_at is None
    with write_transaction():
        update_row_unread(Task, second.id, state=3, closed_at=None)
    assert Task.get_by_id(second.id).state == 3
    assert database.execute_sql("SELECT count(*) FROM task WHERE closed_at IS NOT NULL").fetchone()[0] == 1


# A statement marked for preparing, as the code's own are (insert_statement, update_row_unread, prepared_select).
_NAMED_SQL = prepared("SELECT upper(%s::text), %s::integer + 1")


def _runs_on_this_connection(sql):
    """How often this connection's server session ran `sql` prepared (None: not prepared there)."""
    # A statement's source is the whole query string it came in: the PREPARE is somewhere in it.
    row = database.execute_sql("SELECT generic_plans + custom_plans FROM pg_prepared_statements "
                               "WHERE strpos(statement, %s) > 0",
                               [" AS " + sql.replace("%s", "$1", 1).replace("%s", "$2")]).fetchone()
    return row[0] if row else None


def test_postgresql_parses_a_marked_statement_once_per_connection_and_runs_it_by_name(postgres_app):
    with database.connection_context():
        assert _runs_on_this_connection(_NAMED_SQL) is None
        answers = [database.execute_sql(_NAMED_SQL, (text, number)).fetchall()
                   for text, number in (("one", 1), ("two", 2), ("%s;", 3))]
        assert _runs_on_this_connection(_NAMED_SQL) == 3
    assert answers == [[("ONE", 2)], [("TWO", 3)], [("%S;", 4)]]


@pytest.mark.parametrize("failing", ["after", "before"])
def test_a_round_trip_that_fails_while_preparing_leaves_the_connection_able_to_prepare_again(postgres_app, failing):
    """Whether the PREPARE ran before the error or never ran, the statement runs on that connection afterwards."""
    with database.connection_context():
        connection = database.connection()
        with pytest.raises(peewee.DataError):
            with database.atomic():
                statements = [(_NAMED_SQL, ("text", 1)), ("SELECT 1 / 0", ())]
                database.obj._send(statements if failing == "after" else statements[::-1])
        assert database.connection() is connection
        assert database.execute_sql(_NAMED_SQL, ("again", 2)).fetchall() == [("AGAIN", 3)]
        assert _runs_on_this_connection(_NAMED_SQL) == 1
