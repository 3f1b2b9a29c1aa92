"""The Table API's answer text: each record written straight from its row (app/servicenow_api/ticket_json.py)
must be, byte for byte, what Flask's jsonify makes of the record's values written field by field
(views.document): every field, every display mode, references with and without links."""
import json
from datetime import datetime

import pytest
from flask import current_app

from app.models import Account, Task
from app.servicenow_api.query import parse_query
from app.servicenow_api.records import FIELDS
from app.servicenow_api.tables import TABLES
from app.servicenow_api.views import document
from tests import factories
from tests.conftest import WEBHOOK, basic_auth

EVERY_TICKET_FIELD = FIELDS + ("opened_by.sys_id", "opened_by.user_name", "opened_by.name", "opened_by.email",
                               "assignment_group.sys_id", "assignment_group.name", "number")
PEOPLE = ("CORP\\mrivera", "CORP\\jdoe", 'CORP\\José "Pepe" Ünal', "CORP\\mrivera", "CORP\\kim",
          "CORP\\jdoe", "CORP\\mrivera", "CORP\\lee")


@pytest.fixture
def reader_auth(app):
    factories.account("pam360", "reader")
    return basic_auth("pam360", factories.PASSWORD)


def post(client, api_auth, body):
    answer = client.post(WEBHOOK, data=json.dumps(body), content_type="application/json", headers=api_auth)
    assert answer.status_code == 200
    return answer


@pytest.fixture
def varied_tickets(client, api_auth):
    """Incidents with every kind of value: approved with a window, refused, requested; closed at a whole
    second, in progress; with and without an assignment group and a category; an account's email;
    names and descriptions with quotes, backslashes, control and non-ASCII characters."""
    factories.account("CORP\\mrivera", "user")
    Account.update(email="mrivera@example.com").where(Account.username == "CORP\\mrivera").execute()
    for user in PEOPLE:
        post(client, api_auth, factories.application_request(user=user))
    approved, revoked = factories.admin_request(), factories.admin_request()
    for body in (approved, revoked):
        post(client, api_auth, body)
    post(client, api_auth, factories.admin_decision(approved["RequestId"]))
    post(client, api_auth, factories.admin_decision(revoked["RequestId"]))
    post(client, api_auth, factories.admin_revocation(revoked["RequestId"]))
    Task.update(assignment_group="Windows Admins").where(Task.number.in_(["INC0010001", "INC0010003"])).execute()
    Task.update(assignment_group="").where(Task.number == "INC0010002").execute()
    Task.update(category="Software", state=2).where(Task.number == "INC0010004").execute()
    Task.update(closed_at=datetime(2026, 1, 2, 3, 4, 5), state=7,
                short_description='Tab\there, "quoted" \\ back\nslash, Ünïcödé ✓').where(
        Task.number == "INC0010005").execute()
    return Task.select().count()


def expected_answer(table, query, names, answer):
    """What jsonify writes for the records `query` finds, each made of its values written field by field."""
    served = TABLES[table]
    context = served.context("http://localhost")
    rows, _total = served.find(parse_query(query), 10000, 0, context, names)
    return current_app.json.response(result=[document(served, row, names, context, answer) for row in rows]).data


@pytest.mark.parametrize("mode", ["false", "true", "all"])
@pytest.mark.parametrize("links", [True, False])
@pytest.mark.parametrize("names", [FIELDS, EVERY_TICKET_FIELD], ids=["default fields", "every field"])
def test_a_page_of_tickets_is_written_as_its_values_are(client, reader_auth, varied_tickets, mode, links, names):
    params = {"sysparm_display_value": mode, "sysparm_exclude_reference_link": str(not links).lower(),
              "sysparm_query": "ORDERBYDESCopened_at"}
    if names != FIELDS:
        params["sysparm_fields"] = ",".join(names)

    answer = client.get("/api/now/table/incident", query_string=params, headers=reader_auth)

    assert answer.status_code == 200 and answer.mimetype == "application/json"
    assert len(answer.json["result"]) == varied_tickets == 10
    assert answer.data == expected_answer("incident", "ORDERBYDESCopened_at", names, (mode, links))


def test_the_written_values_are_servicenows(client, reader_auth, varied_tickets):
    """The rendering compared above, pinned on a few records: references, choices, times, dot-walks, escapes."""
    def record(number):
        task = Task.get(Task.number == number)
        answer = client.get(f"/api/now/table/incident/{task.sys_id}", headers=reader_auth, query_string={
            "sysparm_display_value": "all", "sysparm_fields": ",".join(EVERY_TICKET_FIELD)})
        return answer.json["result"], answer.data

    closed, text = record("INC0010005")
    ungrouped, _text = record("INC0010002")
    with_email, _text = record("INC0010001")
    kim = closed["opened_by"]["value"]

    assert closed["opened_by"] == {"display_value": "CORP\\kim", "value": kim,
                                   "link": f"http://localhost/api/now/table/sys_user/{kim}"}
    assert closed["opened_by.sys_id"] == {"display_value": kim, "value": kim}
    assert closed["state"] == {"display_value": "Closed", "value": "7"}
    assert closed["closed_at"] == {"display_value": "2026-01-02 03:04:05", "value": "2026-01-02 03:04:05"}
    assert closed["short_description"]["value"] == 'Tab\there, "quoted" \\ back\nslash, Ünïcödé ✓'
    assert b"\\u00dcn\\u00efc\\u00f6d\\u00e9 \\u2713" in text
    assert ungrouped["assignment_group"] == {"display_value": "", "value": ""}
    assert ungrouped["opened_by.email"] == {"display_value": "", "value": ""}
    assert with_email["opened_by.email"] == {"display_value": "mrivera@example.com", "value": "mrivera@example.com"}


@pytest.mark.parametrize("mode", ["false", "true", "all"])
def test_one_ticket_is_written_as_its_values_are(client, reader_auth, varied_tickets, mode):
    served = TABLES["incident"]
    context = served.context("http://localhost")
    for number in ("INC0010002", "INC0010005", "INC0010009"):
        row = served.find(parse_query(f"number={number}"), 1, 0, context, EVERY_TICKET_FIELD)[0][0]
        answer = client.get(f"/api/now/table/incident/{row.sys_id}", headers=reader_auth, query_string={
            "sysparm_display_value": mode, "sysparm_fields": ",".join(EVERY_TICKET_FIELD)})

        expected = current_app.json.response(result=document(served, row, EVERY_TICKET_FIELD, context,
                                                             (mode, True))).data
        assert answer.data == expected


@pytest.mark.parametrize("table", ["sys_user", "sys_user_group"])
def test_a_page_of_people_is_written_as_its_values_are(client, reader_auth, varied_tickets, table):
    answer = client.get(f"/api/now/table/{table}", headers=reader_auth, query_string={"sysparm_display_value": "all"})

    assert answer.json["result"]
    assert answer.data == expected_answer(table, "", TABLES[table].default_fields, ("all", True))


def test_an_app_writing_indented_json_answers_indented_as_before(app, client, reader_auth, varied_tickets):
    """Flask in debug mode (or with compact JSON turned off) indents its answers: the records' text is too."""
    app.json.compact = False
    answer = client.get("/api/now/table/incident", headers=reader_auth,
                        query_string={"sysparm_display_value": "all", "sysparm_query": "ORDERBYDESCopened_at"})

    assert b'\n  "result": [\n    {\n      "active": {\n' in answer.data
    assert answer.data == expected_answer("incident", "ORDERBYDESCopened_at", FIELDS, ("all", True))
