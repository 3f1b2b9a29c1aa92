"""Statements of a delivery's write transaction whose SQL text is written once per process (app/db.py)."""
from datetime import datetime

import pytest
from peewee import JOIN

from app.db import database, prepared_select, update_row_unread, write_transaction
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
