"""What answering a Table API page costs the database: a fixed number of queries, whatever the page's size.

A page of 10,000 records with approvals, access windows and requesters' emails must not cost 10,000
more queries (at a million tickets that is what made a lookup take seconds)."""
import json
import logging
from contextlib import contextmanager

import pytest

from app.models import Account, Task
from app.servicenow_api.fields import reference_sys_id
from app.servicenow_api.query import parse_query
from app.servicenow_api.tables import TABLES
from app.servicenow_api.views import document
from tests import factories
from tests.conftest import WEBHOOK

EVERY_TICKET_FIELD = ("sys_id", "number", "sys_class_name", "state", "approval", "active", "opened_by",
                      "opened_by.email", "opened_by.user_name", "assignment_group", "assignment_group.name",
                      "short_description", "start_date", "end_date", "opened_at", "closed_at", "sys_created_on",
                      "sys_updated_on", "category", "correlation_id")
ANSWER = ("all", True)


@contextmanager
def counted_queries():
    """The SQL statements run inside the block, as peewee logs each one it executes."""
    statements = []

    class Recorder(logging.Handler):
        def emit(self, record):
            statements.append(record.msg)

    logger, handler = logging.getLogger("peewee"), Recorder(logging.DEBUG)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield statements
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def open_tickets(client, api_auth, users):
    """Incidents opened by `users`, each assigned to a group named after its requester."""
    for user in users:
        answer = client.post(WEBHOOK, data=json.dumps(factories.application_request(user=user)),
                             content_type="application/json", headers=api_auth)
        assert answer.status_code == 200
    Task.update(assignment_group=Task.requester).execute()


def read_page(table, query, names):
    """One page as the list view answers it: (documents, total, queries run)."""
    served = TABLES[table]
    context = served.context("http://localhost")
    with counted_queries() as statements:
        rows, total = served.find(parse_query(query), 10000, 0, context, names)
        documents = [document(served, row, names, context, ANSWER) for row in rows]
    return documents, total, statements


def test_a_ticket_page_costs_the_same_queries_for_one_record_and_for_many(client, api_auth):
    factories.account("CORP\\mrivera", "user")
    Account.update(email="mrivera@example.com").where(Account.username == "CORP\\mrivera").execute()
    open_tickets(client, api_auth, ["CORP\\mrivera"])
    one, one_total, one_queries = read_page("incident", "", EVERY_TICKET_FIELD)
    open_tickets(client, api_auth, ["CORP\\mrivera", "CORP\\jdoe", "CORP\\jdoe", "CORP\\mrivera", "CORP\\kim"])
    many, many_total, many_queries = read_page("incident", "", EVERY_TICKET_FIELD)

    assert (one_total, len(one), many_total, len(many)) == (1, 1, 6, 6)
    # The page alone (it is the last page: it holds the total): approval, active, the window and the email
    # come with it.
    assert len(one_queries) == len(many_queries) == 1, many_queries
    mrivera = "mrivera@example.com"
    assert [record["opened_by.email"]["value"] for record in many] == [mrivera, mrivera, "", "", mrivera, ""]
    assert {record["approval"]["value"] for record in many} == {"requested"}
    assert {record["active"]["value"] for record in many} == {"true"}


def test_a_full_page_is_counted_and_the_last_page_counts_itself(client, api_auth):
    open_tickets(client, api_auth, ["CORP\\mrivera", "CORP\\jdoe", "CORP\\kim"])
    served = TABLES["incident"]
    context = served.context("http://localhost")

    def page(limit, offset):
        with counted_queries() as statements:
            rows, total = served.find(parse_query("ORDERBYnumber"), limit, offset, context, ("number",))
        return [row.number for row in rows], total, len(statements)

    assert page(2, 0) == (["INC0010001", "INC0010002"], 3, 2)
    assert page(2, 2) == (["INC0010003"], 3, 1)
    assert page(3, 0) == (["INC0010001", "INC0010002", "INC0010003"], 3, 2)
    assert page(2, 4) == ([], 3, 2)


def test_one_record_by_sys_id_is_one_query(client, api_auth):
    open_tickets(client, api_auth, ["CORP\\mrivera"])
    served = TABLES["incident"]
    context = served.context("http://localhost")
    [record], _total, _queries = read_page("incident", "", EVERY_TICKET_FIELD)

    with counted_queries() as statements:
        row = served.get(record["sys_id"]["value"], context, EVERY_TICKET_FIELD)
        alone = document(served, row, EVERY_TICKET_FIELD, context, ANSWER)

    assert len(statements) == 1
    assert alone == record


@pytest.mark.parametrize("table, fields", [("sys_user", ("sys_id", "user_name", "name", "email")),
                                           ("sys_user_group", ("sys_id", "name"))])
def test_a_people_page_costs_the_same_queries_for_one_record_and_for_many(client, api_auth, table, fields):
    factories.account("CORP\\jdoe", "user")
    Account.update(email="jdoe@example.com").where(Account.username == "CORP\\jdoe").execute()
    open_tickets(client, api_auth, ["CORP\\jdoe"])
    _one, _total, one_queries = read_page(table, "", fields)
    open_tickets(client, api_auth, ["CORP\\mrivera", "CORP\\kim", "CORP\\lee"])
    many, total, many_queries = read_page(table, "", fields)

    assert len(one_queries) == len(many_queries) == 2, many_queries
    assert total == 4
    assert [person["name"]["value"] for person in many] == ["CORP\\jdoe", "CORP\\kim", "CORP\\lee", "CORP\\mrivera"]
    if table == "sys_user":
        assert [user["email"]["value"] for user in many] == ["jdoe@example.com", "", "", ""]


@pytest.fixture
def hashed(monkeypatch):
    """The requester names people.py hashes to sys_ids, in order."""
    from app.servicenow_api import people

    names = []

    def counted(table, name):
        names.append(name)
        return reference_sys_id(table, name)

    monkeypatch.setattr(people, "reference_sys_id", counted)
    return names


def opened_by(name):
    """The numbers of the incidents whose opened_by is `name`'s sys_id, as the Table API finds them."""
    served = TABLES["incident"]
    query = parse_query(f"opened_by={reference_sys_id('sys_user', name)}")
    rows, _total = served.find(query, 100, 0, served.context("http://localhost"), ("number",))
    return [row.number for row in rows]


def test_a_requester_is_found_by_sys_id_hashing_only_names_not_seen_before(client, api_auth, hashed):
    open_tickets(client, api_auth, ["CORP\\mrivera", "CORP\\jdoe", "CORP\\kim"])

    first = opened_by("CORP\\jdoe")
    names_at_first = len(hashed)
    open_tickets(client, api_auth, ["CORP\\lee", "CORP\\jdoe"])
    again = opened_by("CORP\\jdoe")
    newcomer = opened_by("CORP\\lee")

    assert first == ["INC0010002"]
    assert again == ["INC0010002", "INC0010005"]
    assert newcomer == ["INC0010004"]
    # The first lookup learns each name it has not seen once (none twice); later ones hash only the newcomer.
    learned = hashed[:names_at_first]
    assert set(learned) <= {"CORP\\jdoe", "CORP\\kim", "CORP\\mrivera"} and len(learned) == len(set(learned))
    assert hashed[names_at_first:] == ["CORP\\lee"]
    assert opened_by("CORP\\nobody") == [] and hashed[names_at_first:] == ["CORP\\lee"]


def test_a_recent_requester_is_found_by_sys_id_without_reading_every_name(client, api_auth, hashed, monkeypatch):
    from app.servicenow_api import people

    monkeypatch.setattr(people, "RECENT_IDS", 2)
    monkeypatch.setattr(people, "CATCH_UP_IDS", 1)
    users = [f"CORP\\user{n}" for n in range(8)]
    open_tickets(client, api_auth, users)

    assert opened_by("CORP\\user7") == ["INC0010008"]
    # Only the names of the newest tickets were read: the requester was among them.
    assert sorted(hashed) == ["CORP\\user6", "CORP\\user7"]
    hashed.clear()
    # A sys_id of nobody's has every name read, each older one learned once.
    assert opened_by("CORP\\nobody") == []
    assert sorted(hashed) == users[:6]
    hashed.clear()
    assert opened_by("CORP\\user0") == ["INC0010001"] and hashed == []
