"""The Table API's HTTP behaviour as ServiceNow clients rely on it: versioned paths, paging headers, the limit cap,
references and dot-walking, sys_user and sys_user_group, the Aggregate and Batch subsets, long request lines."""
import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from app.servicenow_api.fields import reference_sys_id
from tests import factories
from tests.conftest import WEBHOOK, basic_auth

TABLE = "/api/now/table/incident"


@pytest.fixture
def reader_auth(app):
    factories.account("pam360", "reader")
    return basic_auth("pam360", factories.PASSWORD)


@pytest.fixture
def tickets(client, api_auth):
    """Five incidents INC0010001..5: mrivera opened the first three, jdoe the last two."""
    for user in ("CORP\\mrivera",) * 3 + ("CORP\\jdoe",) * 2:
        answer = client.post(WEBHOOK, data=json.dumps(factories.application_request(user=user)),
                             content_type="application/json", headers=api_auth)
        assert answer.status_code == 200
    from app.models import Task

    Task.update(assignment_group="Windows Admins").where(Task.number.in_(["INC0010001", "INC0010004"])).execute()


def get(client, auth, path=TABLE, **params):
    return client.get(path, query_string=params, headers=auth)


def links(answer):
    """rel -> (offset, limit) of each page the Link header names."""
    pages = {}
    for part in answer.headers["Link"].split(","):
        url, rel = part.split(";")
        args = parse_qs(urlsplit(url.strip("<>")).query)
        pages[rel.split("=")[1].strip('"')] = (int(args["sysparm_offset"][0]), int(args["sysparm_limit"][0]))
    return pages


@pytest.mark.parametrize("path", ["/api/now/table/incident", "/api/now/v1/table/incident",
                                  "/api/now/v2/table/incident"])
def test_every_versioned_path_answers_alike(client, reader_auth, tickets, path):
    answer = get(client, reader_auth, path, sysparm_fields="number", sysparm_query="ORDERBYnumber")

    assert [r["number"] for r in answer.json["result"]] == [f"INC001000{n}" for n in range(1, 6)]


def test_pages_are_linked_first_prev_next_last_with_the_total(client, reader_auth, tickets):
    middle = get(client, reader_auth, sysparm_limit="2", sysparm_offset="2", sysparm_fields="number")
    first = get(client, reader_auth, sysparm_limit="2", sysparm_fields="number")

    assert middle.headers["X-Total-Count"] == "5"
    assert links(middle) == {"first": (0, 2), "prev": (0, 2), "next": (4, 2), "last": (4, 2)}
    assert links(first) == {"first": (0, 2), "next": (2, 2), "last": (4, 2)}
    assert "Link" not in get(client, reader_auth, sysparm_suppress_pagination_header="true").headers


def test_a_limit_above_ten_thousand_is_capped_not_refused(client, reader_auth, tickets):
    answer = get(client, reader_auth, sysparm_limit="50000", sysparm_fields="number")

    assert answer.status_code == 200
    assert len(answer.json["result"]) == 5
    assert links(answer)["first"] == (0, 10000)


def test_references_carry_link_and_value_unless_links_are_excluded(client, reader_auth, tickets):
    jdoe = reference_sys_id("sys_user", "CORP\\jdoe")
    query = {"sysparm_query": "number=INC0010004", "sysparm_fields": "opened_by,assignment_group"}
    link = f"http://localhost/api/now/table/sys_user/{jdoe}"

    plain = get(client, reader_auth, **query).json["result"][0]
    shown = get(client, reader_auth, sysparm_display_value="true", **query).json["result"][0]
    both = get(client, reader_auth, sysparm_display_value="all", sysparm_exclude_reference_link="true",
               **query).json["result"][0]

    assert plain["opened_by"] == {"link": link, "value": jdoe}
    assert plain["assignment_group"]["value"] == reference_sys_id("sys_user_group", "Windows Admins")
    assert shown["opened_by"] == {"link": link, "display_value": "CORP\\jdoe"}
    assert both["opened_by"] == {"value": jdoe, "display_value": "CORP\\jdoe"}


def test_the_referenced_user_is_a_sys_user_record_with_the_accounts_email(client, reader_auth, tickets):
    from app.models import Account

    Account.update(email="jdoe@example.com").where(Account.username == "pam360").execute()
    factories.account("CORP\\jdoe", "user")
    Account.update(email="jdoe@corp.example").where(Account.username == "CORP\\jdoe").execute()
    jdoe = reference_sys_id("sys_user", "CORP\\jdoe")

    user = get(client, reader_auth, f"/api/now/table/sys_user/{jdoe}").json["result"]
    people = get(client, reader_auth, "/api/now/v2/table/sys_user", sysparm_fields="user_name")
    walked = get(client, reader_auth, sysparm_query="opened_by.emailLIKEcorp.example",
                 sysparm_fields="number,opened_by.email,opened_by.user_name")

    assert user == {"sys_id": jdoe, "user_name": "CORP\\jdoe", "name": "CORP\\jdoe", "email": "jdoe@corp.example"}
    assert people.json["result"] == [{"user_name": "CORP\\jdoe"}, {"user_name": "CORP\\mrivera"}]
    assert [r["number"] for r in walked.json["result"]] == ["INC0010004", "INC0010005"]
    assert walked.json["result"][0]["opened_by.email"] == "jdoe@corp.example"
    assert get(client, reader_auth, f"/api/now/table/sys_user/{'f' * 32}").status_code == 404


def test_text_operators_on_a_sys_id_meet_the_sys_id_itself(client, reader_auth, tickets):
    jdoe, group = reference_sys_id("sys_user", "CORP\\jdoe"), reference_sys_id("sys_user_group", "Windows Admins")

    def users(query):
        answer = get(client, reader_auth, "/api/now/table/sys_user", sysparm_query=query, sysparm_fields="user_name")
        return [record["user_name"] for record in answer.json["result"]]

    def numbers(query):
        return [record["number"] for record in get(client, reader_auth, sysparm_query=query,
                                                   sysparm_fields="number").json["result"]]

    assert users(f"sys_idSTARTSWITH{jdoe[:8]}") == users(f"sys_idLIKE{jdoe[10:20].upper()}") == ["CORP\\jdoe"]
    assert users(f"sys_idENDSWITH{jdoe[-6:]}") == users(f"sys_id={jdoe}") == ["CORP\\jdoe"]
    assert users(f"sys_idNOT LIKE{jdoe[:8]}") == ["CORP\\mrivera"]
    assert users(f"sys_idBETWEEN{jdoe}@{jdoe}") == ["CORP\\jdoe"]
    assert numbers(f"opened_by.sys_idSTARTSWITH{jdoe[:8]}") == numbers(f"opened_by={jdoe}") != []
    assert numbers(f"assignment_group.sys_idLIKE{group[5:15]}") == numbers("assignment_group=Windows Admins") != []
    assert users("sys_idSTARTSWITHnot-hex") == []


def test_assignment_groups_are_sys_user_group_records(client, reader_auth, tickets):
    groups = get(client, reader_auth, "/api/now/table/sys_user_group").json["result"]

    assert groups == [{"sys_id": reference_sys_id("sys_user_group", "Windows Admins"), "name": "Windows Admins"}]


@pytest.mark.parametrize("table", ["sys_user", "sys_user_group"])
@pytest.mark.parametrize("query, descending", [("ORDERBYsys_id", False), ("ORDERBYDESCsys_id", True),
                                               ("nameISNOTEMPTY^ORDERBYsys_id", False),
                                               ("ORDERBYsys_id^ORDERBYname", False)])
def test_people_are_ordered_by_their_sys_id_when_asked(client, reader_auth, tickets, table, query, descending):
    from app.models import Task

    # Five people and three groups, whose sys_ids are not in their names' order.
    for number, person, group in (("INC0010002", "CORP\\kim", "Linux"), ("INC0010003", "CORP\\lee", "DBA"),
                                  ("INC0010005", "CORP\\ann", "Windows Admins")):
        Task.update(requester=person, assignment_group=group).where(Task.number == number).execute()
    everyone = get(client, reader_auth, f"/api/now/table/{table}", sysparm_fields="sys_id").json["result"]
    in_order = sorted((record["sys_id"] for record in everyone), reverse=descending)

    answer = get(client, reader_auth, f"/api/now/table/{table}", sysparm_query=query, sysparm_fields="sys_id")
    second_page = get(client, reader_auth, f"/api/now/table/{table}", sysparm_query=query, sysparm_fields="sys_id",
                      sysparm_limit="2", sysparm_offset="2")

    assert in_order != [record["sys_id"] for record in everyone], "the names' order is not the sys_ids' order"
    assert [record["sys_id"] for record in answer.json["result"]] == in_order
    assert answer.headers["X-Total-Count"] == second_page.headers["X-Total-Count"] == str(len(in_order))
    assert [record["sys_id"] for record in second_page.json["result"]] == in_order[2:4]


def requesters_whose_names_and_sys_ids_order_apart():
    """Give the five incidents requesters and groups whose names' order is not their sys_ids' order."""
    from app.models import Task

    for number, person, group in (("INC0010002", "CORP\\kim", "Linux"), ("INC0010003", "CORP\\lee", "DBA"),
                                  ("INC0010005", "CORP\\ann", "Windows Admins")):
        Task.update(requester=person, assignment_group=group).where(Task.number == number).execute()
    people = sorted({task.requester for task in Task.select()})
    groups = sorted({task.assignment_group for task in Task.select()})
    assert people != sorted(people, key=lambda name: reference_sys_id("sys_user", name))
    assert groups != sorted(groups, key=lambda name: reference_sys_id("sys_user_group", name))


@pytest.mark.parametrize("table, query", [
    ("incident", "ORDERBYopened_by.sys_id"), ("incident", "ORDERBYDESCopened_by.sys_id"),
    ("incident", "ORDERBYassignment_group.sys_id"), ("incident", "ORDERBYDESCassignment_group.sys_id"),
    ("incident", "active=true^ORDERBYnumber^ORDERBYopened_by.sys_id"),
    ("incident", "priority=1^ORDERBYassignment_group.sys_id"),
    ("change_request", "ORDERBYopened_by.sys_id"), ("sc_task", "ORDERBYDESCassignment_group.sys_id"),
    ("sc_req_item", "ORDERBYopened_by.sys_id")])
def test_tickets_are_not_ordered_by_a_references_sys_id_but_refused_naming_what_orders(
        client, reader_auth, tickets, table, query):
    requesters_whose_names_and_sys_ids_order_apart()
    reference = query.rsplit("ORDERBY", 1)[1].removeprefix("DESC").removesuffix(".sys_id")

    answer = get(client, reader_auth, f"/api/now/table/{table}", sysparm_query=query, sysparm_fields="number")

    assert answer.status_code == 400
    assert answer.json["status"] == "failure"
    assert answer.json["error"]["message"] == "Invalid sysparm_query"
    detail = answer.json["error"]["detail"]
    assert f"{reference}.sys_id" in detail
    assert f"ORDERBY{reference}" in detail and f"ORDERBY{reference}.name" in detail and "ORDERBYsys_id" in detail


@pytest.mark.parametrize("query, descending", [("ORDERBYopened_by", False), ("ORDERBYDESCopened_by.name", True),
                                               ("ORDERBYopened_by.user_name", False)])
def test_tickets_are_ordered_by_their_requesters_name_then_as_made(client, reader_auth, tickets, query, descending):
    requesters_whose_names_and_sys_ids_order_apart()
    everyone = get(client, reader_auth, sysparm_query="ORDERBYnumber", sysparm_fields="number,opened_by.name")
    in_order = [record["number"] for record in sorted(
        sorted(everyone.json["result"], key=lambda record: record["number"]),
        key=lambda record: record["opened_by.name"], reverse=descending)]

    answer = get(client, reader_auth, sysparm_query=query, sysparm_fields="number")
    second_page = get(client, reader_auth, sysparm_query=query, sysparm_fields="number", sysparm_limit="2",
                      sysparm_offset="2")

    assert [record["number"] for record in answer.json["result"]] == in_order
    assert [record["number"] for record in second_page.json["result"]] == in_order[2:4]


def test_a_batch_refuses_ordering_tickets_by_a_references_sys_id_as_the_table_api_does(client, reader_auth, tickets):
    body = {"batch_request_id": "1", "rest_requests": [
        {"id": "a", "method": "GET", "headers": [{"name": "Accept", "value": "application/json"}],
         "url": f"{TABLE}?sysparm_query=ORDERBYopened_by.sys_id&sysparm_fields=number"}]}

    answer = client.post("/api/now/v1/batch", json=body, headers=reader_auth)

    [served] = answer.json["serviced_requests"]
    assert served["status_code"] == 400
    assert json.loads(base64.b64decode(served["body"]))["error"]["message"] == "Invalid sysparm_query"


def test_users_of_the_same_email_are_ordered_by_their_sys_id_after_it(client, reader_auth, tickets):
    from app.models import Account, Task

    Task.update(requester="CORP\\kim").where(Task.number == "INC0010002").execute()
    for name in ("CORP\\jdoe", "CORP\\kim"):
        factories.account(name, "user")
    Account.update(email="shared@corp.example").where(Account.username.in_(["CORP\\jdoe", "CORP\\kim"])).execute()
    shared = sorted([reference_sys_id("sys_user", "CORP\\jdoe"), reference_sys_id("sys_user", "CORP\\kim")],
                    reverse=True)

    answer = get(client, reader_auth, "/api/now/table/sys_user", sysparm_query="ORDERBYDESCemail^ORDERBYDESCsys_id",
                 sysparm_fields="sys_id,email")

    assert answer.json["result"] == [{"sys_id": shared[0], "email": "shared@corp.example"},
                                     {"sys_id": shared[1], "email": "shared@corp.example"},
                                     {"sys_id": reference_sys_id("sys_user", "CORP\\mrivera"), "email": ""}]


def test_the_aggregate_api_counts_tickets_in_all_and_per_value(client, reader_auth, tickets):
    total = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true",
                sysparm_query="short_descriptionLIKEapplication")
    grouped = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true", sysparm_group_by="opened_by")
    unknown = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true", sysparm_query="priority=1")

    assert total.json == {"result": {"stats": {"count": "5"}}}
    assert grouped.json["result"] == [
        {"stats": {"count": "2"}, "groupby_fields": [{"field": "opened_by",
                                                      "value": reference_sys_id("sys_user", "CORP\\jdoe")}]},
        {"stats": {"count": "3"}, "groupby_fields": [{"field": "opened_by",
                                                      "value": reference_sys_id("sys_user", "CORP\\mrivera")}]}]
    assert unknown.json == {"result": {"stats": {"count": "0"}}}


def test_a_batch_serves_table_api_gets_as_pysnc_sends_them(client, reader_auth, tickets):
    long_query = "^OR".join(["number=INC0010002"] * 1500)  # past SQLite's expression depth of 1,000
    body = {"batch_request_id": "1", "rest_requests": [
        {"id": "a", "method": "GET", "headers": [{"name": "Accept", "value": "application/json"}],
         "url": f"/api/now/table/incident?sysparm_query={long_query}&sysparm_fields=number"},
        {"id": "b", "method": "DELETE", "url": "/api/now/table/incident/x", "headers": []}]}

    answer = client.post("/api/now/v1/batch", json=body, headers=reader_auth)

    assert answer.status_code == 200
    served = {item["id"]: item for item in answer.json["serviced_requests"]}
    assert answer.json["batch_request_id"] == "1" and answer.json["unserviced_requests"] == []
    assert served["a"]["status_code"] == 200
    assert json.loads(base64.b64decode(served["a"]["body"])) == {"result": [{"number": "INC0010002"}]}
    assert served["b"]["status_code"] == 400
    assert json.loads(base64.b64decode(served["b"]["body"]))["status"] == "failure"


@pytest.mark.parametrize("where", ["url", "header"])
def test_a_batch_with_text_that_is_not_unicode_gets_a_400(client, reader_auth, tickets, where):
    """A JSON \\u escape can name half a surrogate pair, which no URL or header can carry."""
    url = "/api/now/table/incident?sysparm_query=short_description=caf\\udce9" if where == "url" else TABLE
    header = "application/json\\udce9" if where == "header" else "application/json"
    body = ('{"batch_request_id": "1", "rest_requests": [{"id": "a", "method": "GET", "url": "%s", '
            '"headers": [{"name": "Accept", "value": "%s"}]}]}' % (url, header))

    answer = client.post("/api/now/v1/batch", data=body, content_type="application/json", headers=reader_auth)

    assert answer.status_code == 400
    assert answer.json["status"] == "failure" and answer.json["error"]["message"] == "Invalid batch"
    assert "unpaired surrogates" in answer.json["error"]["detail"]


def test_a_batch_runs_with_the_callers_credentials_only(client, api_auth, tickets):
    body = {"batch_request_id": "1", "rest_requests": [{"id": "a", "method": "GET", "url": TABLE, "headers": [
        {"name": "Authorization", "value": basic_auth("pam360", factories.PASSWORD)["Authorization"]}]}]}

    assert client.post("/api/now/v1/batch", json=body).status_code == 401
    assert client.post("/api/now/v1/batch", json=body, headers=api_auth).status_code == 403


def test_a_request_line_over_32_kib_gets_a_json_414(client, reader_auth):
    answer = get(client, reader_auth, sysparm_query="number=" + "X" * (33 * 1024))

    assert answer.status_code == 414
    assert answer.json["status"] == "failure"
    assert answer.json["error"]["message"] == "Request line too long"
    assert get(client, reader_auth, sysparm_query="number=" + "X" * (30 * 1024)).status_code == 200


def test_the_aggregate_api_groups_by_computed_fields_and_several_at_once(client, reader_auth, tickets):
    from app.models import Task

    Task.update(state=2).where(Task.number == "INC0010005").execute()

    grouped = get(client, reader_auth, "/api/now/v1/stats/incident", sysparm_count="true",
                  sysparm_group_by="approval,state", sysparm_query="stateIN1,2")
    uncounted = get(client, reader_auth, "/api/now/stats/incident", sysparm_group_by="state")

    assert [(row["stats"]["count"], [f["value"] for f in row["groupby_fields"]]) for row in grouped.json["result"]] \
        == [("4", ["requested", "1"]), ("1", ["requested", "2"])]
    assert uncounted.json["result"][0]["stats"] == {}


def test_the_aggregate_api_groups_times_at_the_second_and_walked_sys_ids_as_sys_ids(client, reader_auth, tickets):
    from datetime import datetime

    from app.models import Task

    # Three tickets opened within one second, as the Table API shows and compares them.
    for microsecond, number in ((100, "INC0010001"), (200_000, "INC0010002"), (999_999, "INC0010003")):
        Task.update(opened_at=datetime(2026, 11, 20, 14, 3, 11, microsecond)).where(Task.number == number).execute()
    query = "numberININC0010001,INC0010002,INC0010003"
    by_time = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true", sysparm_group_by="opened_at",
                  sysparm_query=query)
    by_sys_id = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true",
                    sysparm_group_by="opened_by.sys_id")
    by_reference = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true",
                       sysparm_group_by="opened_by")

    assert by_time.json["result"] == [
        {"stats": {"count": "3"}, "groupby_fields": [{"field": "opened_at", "value": "2026-11-20 14:03:11"}]}]
    assert get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true",
               sysparm_query="opened_at=2026-11-20 14:03:11").json["result"]["stats"]["count"] == "3"
    assert [(row["stats"], row["groupby_fields"][0]["value"]) for row in by_sys_id.json["result"]] == [
        (row["stats"], row["groupby_fields"][0]["value"]) for row in by_reference.json["result"]]


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_grouping_by_the_access_window_groups_at_the_second(client, api_auth, reader_auth, field):
    # EPM's times carry fractions of a second; the window comes from the JIT record (SQLite answers it as text).
    for fraction in ("1234567", "7654321"):
        created = factories.admin_request()
        client.post(WEBHOOK, data=json.dumps(created), content_type="application/json", headers=api_auth)
        decided = factories.admin_decision(created["RequestId"], StartTime=f"2026-11-20T15:12:03.{fraction}Z",
                                           EndTime=f"2026-11-20T16:12:03.{fraction}Z")
        client.post(WEBHOOK, data=json.dumps(decided), content_type="application/json", headers=api_auth)
    shown = get(client, reader_auth, sysparm_fields=field)
    grouped = get(client, reader_auth, "/api/now/stats/incident", sysparm_count="true", sysparm_group_by=field)
    value = {"start_date": "2026-11-20 15:12:03", "end_date": "2026-11-20 16:12:03"}[field]
    assert shown.json["result"] == [{field: value}] * 2
    assert grouped.json["result"] == [{"groupby_fields": [{"field": field, "value": value}], "stats": {"count": "2"}}]


@pytest.mark.parametrize("parameter", ["sysparm_display_value", "sysparm_exclude_reference_link",
                                       "sysparm_suppress_pagination_header"])
def test_a_bad_answer_parameter_is_refused_even_when_no_record_matches(client, reader_auth, parameter):
    answer = get(client, reader_auth, **{parameter: "\x14", "sysparm_query": "number=INC0019999"})

    assert answer.status_code == 400
    assert answer.json["error"]["message"] == f"Invalid {parameter}"


def test_a_batchs_inner_request_cannot_choose_the_host_its_links_name(client, reader_auth, tickets):
    body = {"batch_request_id": "1", "rest_requests": [{"id": "a", "method": "GET", "headers": [
        {"name": "Host", "value": "evil.example"}, {"name": "X-Forwarded-Host", "value": "evil.example"},
        {"name": "Accept", "value": "application/json"}],
        "url": f"{TABLE}?sysparm_limit=1&sysparm_fields=number"}]}

    answer = client.post("/api/now/v1/batch", json=body, headers=reader_auth)

    [served] = answer.json["serviced_requests"]
    links = [header["value"] for header in served["headers"] if header["name"] == "Link"]
    assert links and "evil.example" not in links[0] and links[0].startswith("<http://localhost/api/now/")
