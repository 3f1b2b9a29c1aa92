"""The ServiceNow Table API subset over the broker's tickets: queries, fields, limits, display values, auth."""
import json

import pytest

from app.configuration import update_configuration
from tests import factories
from app.servicenow_api.fields import reference_sys_id
from tests.conftest import WEBHOOK, basic_auth

TABLE = "/api/now/table/incident"


@pytest.fixture
def reader_auth(app):
    factories.account("pam360", "reader")
    return basic_auth("pam360", factories.PASSWORD)


@pytest.fixture
def tickets(client, api_auth):
    """Three incidents: INC0010001 and INC0010002 by mrivera, INC0010003 by jdoe (moved to In Progress)."""
    made = []
    for user in ("CORP\\mrivera", "CORP\\mrivera", "CORP\\jdoe"):
        answer = client.post(WEBHOOK, data=json.dumps(factories.application_request(user=user)),
                             content_type="application/json", headers=api_auth)
        made.append(answer.json["result"]["ticket"])
    from app.models import Task

    Task.update(state=2).where(Task.number == made[2]).execute()
    return made


def get(client, auth, path=TABLE, **params):
    return client.get(path, query_string=params, headers=auth)


def test_a_query_by_number_answers_in_servicenows_shape(client, reader_auth, tickets):
    answer = get(client, reader_auth, sysparm_query="number=INC0010002")

    assert answer.status_code == 200
    [record] = answer.json["result"]
    assert record["number"] == "INC0010002"
    assert record["state"] == "1"
    assert record["approval"] == "requested"
    assert record["opened_by"] == {"link": f"http://localhost/api/now/table/sys_user/{record['opened_by']['value']}",
                                   "value": reference_sys_id("sys_user", "CORP\\mrivera")}
    assert record["start_date"] == "" and record["end_date"] == ""
    assert len(record["sys_id"]) == 32
    assert record["short_description"].startswith("Application Access")


def test_conditions_joined_by_caret_must_all_hold(client, reader_auth, tickets):
    both = get(client, reader_auth, sysparm_query="opened_by=CORP\\mrivera^state=1")
    label = get(client, reader_auth, sysparm_query="state=In Progress")
    negated = get(client, reader_auth, sysparm_query="state!=1")

    assert [r["number"] for r in both.json["result"]] == ["INC0010001", "INC0010002"]
    assert [r["number"] for r in label.json["result"]] == ["INC0010003"]
    assert [r["number"] for r in negated.json["result"]] == ["INC0010003"]


def test_fields_limit_offset_and_ordering(client, reader_auth, tickets):
    answer = get(client, reader_auth, sysparm_fields="number,state,nonexistent", sysparm_limit="2",
                 sysparm_offset="1", sysparm_query="ORDERBYDESCnumber")

    assert answer.json["result"] == [{"number": "INC0010002", "state": "1"}, {"number": "INC0010001", "state": "1"}]
    assert answer.headers["X-Total-Count"] == "3"


def test_display_values_and_both(client, reader_auth, tickets):
    shown = get(client, reader_auth, sysparm_query="number=INC0010003", sysparm_fields="state,approval",
                sysparm_display_value="true")
    both = get(client, reader_auth, sysparm_query="number=INC0010003", sysparm_fields="state",
               sysparm_display_value="all")

    assert shown.json["result"] == [{"state": "In Progress", "approval": "Requested"}]
    assert both.json["result"] == [{"state": {"value": "2", "display_value": "In Progress"}}]


def test_approval_and_window_follow_the_decision_epm_finalized(client, reader_auth, api_auth, tickets):
    created = factories.admin_request()
    number = client.post(WEBHOOK, data=json.dumps(created), content_type="application/json",
                         headers=api_auth).json["result"]["ticket"]
    client.post(WEBHOOK, data=json.dumps(factories.admin_decision(created["RequestId"])),
                content_type="application/json", headers=api_auth)

    approved = get(client, reader_auth, sysparm_query="approval=approved", sysparm_fields="number,start_date,end_date")

    assert approved.json["result"] == [{"number": number, "start_date": "2026-11-20 15:12:03",
                                        "end_date": "2026-11-20 15:42:03"}]


def test_one_record_by_sys_id(client, reader_auth, tickets):
    from app.models import Task

    task = Task.get(Task.number == "INC0010001")

    answer = get(client, reader_auth, f"{TABLE}/{task.sys_id}", sysparm_fields="number,sys_id")
    missing = get(client, reader_auth, f"{TABLE}/{'0' * 32}")
    wrong_table = get(client, reader_auth, f"/api/now/table/change_request/{task.sys_id}")

    assert answer.json == {"result": {"number": "INC0010001", "sys_id": task.sys_id}}
    assert missing.status_code == wrong_table.status_code == 404
    assert missing.json["error"]["message"] == "No Record found"
    assert missing.json["status"] == "failure"


def test_each_table_holds_only_its_own_tickets(client, reader_auth, tickets):
    update_configuration({"ticket_type": "change_request"})
    client.post(WEBHOOK, data=json.dumps(factories.application_request()), content_type="application/json",
                headers={**basic_auth("epm", factories.PASSWORD)})

    changes = get(client, reader_auth, "/api/now/table/change_request", sysparm_fields="number,state")

    assert changes.json["result"] == [{"number": "CHG0000001", "state": "-5"}]
    assert len(get(client, reader_auth).json["result"]) == 3


@pytest.mark.parametrize("query", [
    "priority=1", "state=1^ORpriority=1", "ORDERBYpriority",
    # Names with capitals are no field of a ServiceNow table (its column names are lower case): no rows, not a 400.
    "Number=INC0010001", "NUMBER=INC0010001", "number=INC0010001^ORShort_DescriptionLIKEaccess",
    "SHORT_DESCRIPTIONLIKEAccess", "opened_by.User_Name=CORP\\jdoe", "number=INC0010001^ORDERBYNumber",
    "u_Ticket_IdININC0010001,INC0010002^NQnumber=INC0010003^state=7",
])
def test_a_query_naming_an_unknown_field_answers_no_rows(client, reader_auth, tickets, query):
    answer = get(client, reader_auth, sysparm_query=query)

    assert answer.status_code == 200
    assert answer.json["result"] == [] and answer.headers["X-Total-Count"] == "0"


@pytest.mark.parametrize("query, wanted", [("state=2^NQ", ["INC0010003"]), ("^NQnumber=INC0010001", ["INC0010001"]),
                                           ("state=2^NQ^NQnumber=INC0010001", ["INC0010001", "INC0010003"])])
def test_an_empty_nq_part_never_widens_the_answer_to_every_record(client, reader_auth, tickets, query, wanted):
    answer = get(client, reader_auth, sysparm_query=query, sysparm_fields="number")

    assert answer.status_code == 200
    assert [record["number"] for record in answer.json["result"]] == wanted
    assert answer.headers["X-Total-Count"] == str(len(wanted))


# A term without a field or an operator, a BETWEEN without its second bound, an ^OR with nothing after it.
@pytest.mark.parametrize("query, where", [("=INC0010001", 1), ("number^state=1", 7), ("state=1^!=2", 9),
                                          ("numberBETWEENINC0010001", 14), ("state=1^OR", 8)])
def test_text_that_is_no_encoded_query_is_refused_in_servicenows_shape(client, reader_auth, tickets, query, where):
    answer = get(client, reader_auth, sysparm_query=query)

    assert answer.status_code == 400
    assert answer.json["status"] == "failure"
    assert answer.json["error"]["message"] == "Invalid sysparm_query"
    assert f"at character {where}" in answer.json["error"]["detail"]


def test_unknown_tables_and_bad_limits_are_refused(client, reader_auth):
    assert get(client, reader_auth, "/api/now/table/cmdb_ci").status_code == 400
    assert get(client, reader_auth, sysparm_limit="0").status_code == 400
    assert get(client, reader_auth, sysparm_limit="lots").status_code == 400


def test_readers_and_approvers_may_read_nobody_else(client, reader_auth, approver_auth, admin_auth, api_auth):
    assert get(client, reader_auth).status_code == 200
    assert get(client, approver_auth).status_code == 200
    assert get(client, admin_auth).status_code == 200
    assert get(client, api_auth).status_code == 403
    unauthenticated = client.get(TABLE)
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Basic")
    assert get(client, basic_auth("pam360", "wrong-password")).status_code == 401


def test_a_reader_can_use_nothing_but_the_table_api(client, reader_auth, tickets):
    assert client.get("/api/x_bets_pmc_jit/tickets", headers=reader_auth).status_code == 403
    assert client.post(f"/api/x_bets_pmc_jit/tickets/{tickets[0]}/decision", headers=reader_auth,
                       json={"decision": "Approved", "reason": "x", "duration_unit": "once"}).status_code == 403


def test_a_reader_cannot_sign_in_to_the_pages(client, web, reader_auth):
    refused = web.sign_in("pam360")

    assert refused.status_code == 401
    assert "This account&#39;s role (reader) is for reading the Table API: it cannot sign in here." in (
        refused.get_data(as_text=True))
    assert client.get("/tickets", headers=reader_auth).status_code == 302  # to the sign-in page


def test_a_browser_session_is_not_enough(client, web, approver):
    web.sign_in(approver.username)

    assert client.get(TABLE).status_code == 401


@pytest.mark.parametrize("table, prefix", [("sc_task", "SCTASK"), ("sc_req_item", "RITM")])
def test_catalog_tasks_and_requested_items_are_served_too(client, api_auth, reader_auth, table, prefix):
    update_configuration({"ticket_type": table})
    client.post(WEBHOOK, data=json.dumps(factories.application_request()), content_type="application/json",
                headers=api_auth)

    answer = get(client, reader_auth, f"/api/now/table/{table}", sysparm_query=f"number={prefix}0010001^state=Open",
                 sysparm_fields="number,state,approval,opened_by", sysparm_exclude_reference_link="true")

    assert answer.json == {"result": [{"number": f"{prefix}0010001", "state": "1", "approval": "requested",
                                       "opened_by": reference_sys_id("sys_user", "CORP\\mrivera")}]}
    assert get(client, reader_auth, "/api/now/table/sc_task" if table != "sc_task" else TABLE).json == {"result": []}


def test_the_requester_can_be_read_dot_walked_as_on_an_instance(client, reader_auth, tickets):
    asked = get(client, reader_auth, sysparm_query="opened_by.user_name=CORP\\jdoe",
                sysparm_fields="number,opened_by.user_name")
    default = get(client, reader_auth, sysparm_query="number=INC0010001")

    assert asked.json["result"] == [{"number": "INC0010003", "opened_by.user_name": "CORP\\jdoe"}]
    assert "opened_by.user_name" not in default.json["result"][0]


def test_a_servicenow_client_checks_a_jit_ticket_against_the_broker(client, reader_auth, tickets):
    """What a PAM configured for ServiceNow does: the broker's own ServiceNow connector, pointed at the broker."""
    import re
    from urllib.parse import urlsplit

    import responses

    from app.itsm.models import ItsmConnection
    from app.itsm.servicenow import ServiceNowConnector

    def through_the_broker(request):
        parts = urlsplit(request.url)
        answer = client.get(f"{parts.path}?{parts.query}", headers={"Authorization": request.headers["Authorization"]})
        return answer.status_code, {"Content-Type": answer.content_type}, answer.get_data()

    broker = ItsmConnection(name="jit", kind="servicenow", base_url="https://jit.example.com", auth_method="basic",
                            username="pam360", secret=factories.PASSWORD)
    with responses.RequestsMock() as mock:
        mock.add_callback("GET", re.compile(r"https://jit\.example\.com/api/now/table/.*"), through_the_broker)

        ticket = ServiceNowConnector(broker).lookup("INC0010003")
        missing = ServiceNowConnector(broker).lookup("INC0019999")
        settings = ServiceNowConnector(broker).validate_settings()

    assert (ticket.number, ticket.state, ticket.approval, ticket.requester) == (
        "INC0010003", "In Progress", "requested", "CORP\\jdoe")
    assert missing is None
    assert settings == "Settings OK: ServiceNow 'jit' answered (Table API readable)."
