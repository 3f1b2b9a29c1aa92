"""The Table API's lookups as PAM products send them (bench/table_api.py) read through indexes, never every ticket.

A person's tickets by name (`opened_byLIKE<name>^ORDERBYDESCopened_at`) through the search index of
migration 28, ticket numbers (`numberIN...`) through their unique index, and a person by sys_id through
the requester's index: checked with EXPLAIN on ten thousand generated tickets, statistics gathered, so a
change that makes one of them read every ticket fails here rather than at a million tickets."""
import re

import pytest

from app import contract
from app.db import database, is_sqlite
from app.models import Task
from app.servicenow_api import records
from app.servicenow_api.fields import reference_sys_id
from app.servicenow_api.query import parse_query
from app.servicenow_api.tables import TABLES
from bench import generate
from tests import factories
from tests.conftest import basic_auth

TICKETS = 10_000


@pytest.fixture
def history(app):
    generate.generate(TICKETS)
    if not is_sqlite():
        database.execute_sql("ANALYZE")
    return list(Task.select().order_by(Task.id).offset(TICKETS // 2).limit(10))


@pytest.fixture
def reader_auth(app):
    factories.account("pam360", "reader")
    return basic_auth("pam360", factories.PASSWORD)


def plan(query):
    sql, params = query.sql()
    if is_sqlite():
        return " ".join(row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    return " ".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def page_and_count(text):
    """The plans of the page (default fields, as pysnc reads) and of the count a Table API query runs."""
    context = TABLES["incident"].context("http://localhost")
    page, count = records.page_queries(contract.INCIDENT, parse_query(text), 10000, 0, context, records.FIELDS)
    return plan(page), plan(count)


def assert_reads_no_table_in_full(text):
    """No table holding rows is read in full: the tickets by an index, their JIT records and decisions by ticket.
    (PostgreSQL reads an empty table, as the decisions are here, in full: nothing is cheaper.)"""
    if is_sqlite():
        assert "SCAN" not in text.replace("SCAN json_each", ""), text
    else:
        scanned = set(re.findall(r"Seq Scan on (\w+)", text))
        assert not [table for table in scanned
                    if database.execute_sql(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()[0]], text


def test_perf_a_persons_tickets_by_name_read_the_search_index(history):
    person = history[0].requester.split("\\")[-1]

    for text in page_and_count(f"opened_byLIKE{person}^ORDERBYDESCopened_at"):
        if is_sqlite():
            # The trigram index named the matching tickets before this query: it reads them by id.
            assert "USING INTEGER PRIMARY KEY" in text, text
        else:
            assert "task_search_trgm" in text, text
        assert_reads_no_table_in_full(text)


def test_perf_tickets_by_number_read_the_number_index(history):
    numbers = ",".join(task.number for task in history)

    for text in page_and_count(f"numberIN{numbers}"):
        assert "task_number" in text, text
        assert_reads_no_table_in_full(text)


def test_perf_a_persons_tickets_by_sys_id_read_the_requester_index(history):
    sys_id = reference_sys_id("sys_user", history[0].requester)

    for text in page_and_count(f"opened_by={sys_id}^ORDERBYDESCopened_at"):
        assert "task_requester_earlier" in text, text
        assert_reads_no_table_in_full(text)


def test_perf_the_lookups_find_what_they_ask_for(client, history, reader_auth):
    """The queries whose plans are checked above answer the tickets asked for."""
    person = history[0].requester
    user_name = person.split("\\")[-1]
    numbers = [task.number for task in history]

    def found(query, fields):
        answer = client.get("/api/now/table/incident", headers=reader_auth,
                            query_string={"sysparm_query": query, "sysparm_fields": fields})
        assert answer.status_code == 200
        return answer.json["result"]

    by_name = found(f"opened_byLIKE{user_name}^ORDERBYDESCopened_at", "opened_by.name,opened_at")
    by_number = found(f"numberIN{','.join(numbers)}", "number")
    by_sys_id = found(f"opened_by={reference_sys_id('sys_user', person)}", "opened_by.name")

    named = [record["opened_by.name"] for record in by_name]
    assert person in named and all(user_name.lower() in name.lower() for name in named)
    assert len(named) == Task.select().where(Task.requester.contains(user_name)).count()
    assert [record["opened_at"] for record in by_name] == sorted((record["opened_at"] for record in by_name),
                                                                 reverse=True)
    assert sorted(record["number"] for record in by_number) == sorted(numbers)
    assert [record["opened_by.name"] for record in by_sys_id] == [person] * Task.select().where(
        Task.requester == person).count()
