"""The ServiceNow connector against recorded Table API and OAuth answers."""
import logging
from datetime import datetime

import pytest
import requests
import responses

from app.itsm.base import ItsmError, ItsmSettingsError
from app.itsm.models import ItsmConnection
from app.itsm.servicenow import ServiceNowConnector, table_for

SN = "https://corp.service-now.com"

# A change_request as the Table API answers with sysparm_display_value=all.
CHANGE = {
    "sys_id": {"display_value": "c83c5e5347c12200e0ef563dbb9a7190", "value": "c83c5e5347c12200e0ef563dbb9a7190"},
    "number": {"display_value": "CHG0000024", "value": "CHG0000024"},
    "state": {"display_value": "Scheduled", "value": "-2"},
    "approval": {"display_value": "Approved", "value": "approved"},
    "start_date": {"display_value": "2026-11-23 02:00:00 AM", "value": "2026-11-23 10:00:00"},
    "end_date": {"display_value": "2026-11-23 04:00:00 AM", "value": "2026-11-23 12:00:00"},
    "requested_by.user_name": {"display_value": "beth.anglin", "value": "beth.anglin"},
    "opened_by.user_name": {"display_value": "admin", "value": "admin"},
}


def connection(**values):
    defaults = {"name": "corp", "kind": "servicenow", "base_url": SN, "auth_method": "basic", "username": "svc-jit",
                "secret": "sn-password"}
    return ItsmConnection(**{**defaults, **values})


@responses.activate
def test_a_change_maps_to_the_one_ticket_shape():
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [CHANGE]})

    ticket = ServiceNowConnector(connection()).lookup("CHG0000024")

    assert ticket.number == "CHG0000024"
    assert ticket.state == "Scheduled"
    assert ticket.approval == "approved"
    assert ticket.window_start == datetime(2026, 11, 23, 10, 0)
    assert ticket.window_end == datetime(2026, 11, 23, 12, 0)
    assert ticket.requester == "beth.anglin"
    assert ticket.source == "corp"


@responses.activate
def test_the_lookup_queries_by_number_with_basic_auth_and_a_time_out(monkeypatch):
    seen = {}
    original = requests.Session.request

    def spy(session, method, url, **kwargs):
        seen.update(kwargs)
        return original(session, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", spy)
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [CHANGE]})

    ServiceNowConnector(connection(timeout_seconds=7)).lookup("CHG0000024")

    request = responses.calls[0].request
    assert request.params["sysparm_query"] == "number=CHG0000024"
    assert request.params["sysparm_limit"] == "1"
    assert request.params["sysparm_display_value"] == "all"
    assert "requested_by.user_name" in request.params["sysparm_fields"]
    assert request.headers["Authorization"] == "Basic c3ZjLWppdDpzbi1wYXNzd29yZA=="
    assert seen["timeout"] == 7 and seen["allow_redirects"] is False


@pytest.mark.parametrize("number, table", [
    ("INC0010001", "incident"), ("CHG0000001", "change_request"), ("CTASK0000001", "change_task"),
    ("RITM0010001", "sc_req_item"), ("SCTASK0010001", "sc_task"), ("REQ0010001", "sc_request"),
    ("PRB0000001", "problem"), ("PRJ0000001", "pm_project"), ("PRJTASK0000001", "pm_project_task"),
    ("TASK0000001", "task"),
])
def test_the_number_prefix_picks_the_table(number, table):
    assert table_for(number) == table


@responses.activate
def test_a_requested_item_uses_requested_for_as_the_requester():
    item = {"number": {"value": "RITM0010001", "display_value": "RITM0010001"},
            "state": {"value": "2", "display_value": "Work in Progress"},
            "approval": {"value": "requested", "display_value": "Requested"},
            "requested_for.user_name": {"value": "abel.tuter", "display_value": "abel.tuter"}}
    responses.get(f"{SN}/api/now/table/sc_req_item", json={"result": [item]})

    ticket = ServiceNowConnector(connection()).lookup("RITM0010001")

    assert (ticket.state, ticket.approval, ticket.requester) == ("Work in Progress", "requested", "abel.tuter")
    assert ticket.window_start is None and ticket.window_end is None


@responses.activate
def test_an_unknown_number_is_none():
    responses.get(f"{SN}/api/now/table/change_request", json={"result": []})

    assert ServiceNowConnector(connection()).lookup("CHG0000099") is None


# A custom reference pattern may match anything the requester writes; in `number=<reference>` each of these
# would add terms of the requester's choosing (ServiceNow's encoded query has no escape for `^` in a value), or
# have the instance run a script (a value starting `javascript:`).
@pytest.mark.parametrize("reference", [
    "CHG0000099^ORnumberSTARTSWITHCHG", "CHG0000099^NQACTIVE=TRUE", "CHG0000099^approval=approved",
    "^NQ", "CHG0000099^", "JAVASCRIPT:GS.GETUSERID()", "CHG0000099\n", "CHG 0000099", "C" * 41,
])
@responses.activate
def test_a_reference_that_is_no_record_number_adds_no_query_terms_and_is_not_looked_up(reference):
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [CHANGE]})
    responses.get(f"{SN}/api/now/table/task", json={"result": [CHANGE]})

    with pytest.raises(ItsmError, match="is no ServiceNow record number.*not looked up"):
        ServiceNowConnector(connection()).lookup(reference)

    assert len(responses.calls) == 0


@pytest.mark.parametrize("reference", ["CHG0000024", "chg0000024", "ACME_CHG-0000024", "CHG.0000024", "C" * 40])
@responses.activate
def test_a_record_number_of_any_prefix_is_looked_up_as_one_term(reference):
    responses.get(f"{SN}/api/now/table/task", json={"result": [CHANGE]})
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [CHANGE]})

    ServiceNowConnector(connection()).lookup(reference)

    assert responses.calls[0].request.params["sysparm_query"] == f"number={reference}"


@responses.activate
def test_oauth_password_grant_then_bearer_token_reused(caplog):
    caplog.set_level(logging.DEBUG)
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-access", "refresh_token": "r", "expires_in": 1799})
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [CHANGE]})
    connector = ServiceNowConnector(connection(auth_method="oauth", client_id="cid", client_secret="csecret"))

    connector.lookup("CHG0000024")
    connector.lookup("CHG0000024")

    token_calls = [call for call in responses.calls if call.request.url.endswith("/oauth_token.do")]
    assert len(token_calls) == 1
    form = token_calls[0].request.body
    assert "grant_type=password" in form and "client_id=cid" in form and "username=svc-jit" in form
    assert responses.calls[1].request.headers["Authorization"] == "Bearer sn-access"
    for secret in ("csecret", "sn-password", "sn-access"):
        assert secret not in caplog.text


@responses.activate
def test_oauth_uses_the_refresh_token_grant_when_one_is_stored():
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-access", "expires_in": 1799})
    responses.get(f"{SN}/api/now/table/change_request", json={"result": []})

    ServiceNowConnector(connection(auth_method="oauth", client_id="cid", client_secret="cs", username="",
                                   secret="", refresh_token="rt-1")).lookup("CHG0000024")

    assert "grant_type=refresh_token" in responses.calls[0].request.body
    assert "refresh_token=rt-1" in responses.calls[0].request.body


@responses.activate
def test_validate_settings_reads_one_record():
    responses.get(f"{SN}/api/now/table/change_request", json={"result": [{"sys_id": "x"}]})

    message = ServiceNowConnector(connection()).validate_settings()

    assert message == "Settings OK: ServiceNow 'corp' answered (Table API readable)."
    assert responses.calls[0].request.params["sysparm_limit"] == "1"


@responses.activate
def test_validate_settings_reports_refused_credentials():
    responses.get(f"{SN}/api/now/table/change_request", status=401,
                  json={"error": {"message": "User Not Authenticated"}, "status": "failure"})

    with pytest.raises(ItsmError, match="refused the credentials .*HTTP 401"):
        ServiceNowConnector(connection()).validate_settings()


def test_validate_settings_names_what_is_missing():
    with pytest.raises(ItsmSettingsError, match="missing: User name, Password"):
        ServiceNowConnector(connection(username="", secret="")).validate_settings()


@responses.activate
def test_an_html_answer_means_a_wrong_base_url():
    responses.get(f"{SN}/api/now/table/change_request", body="<html>login</html>", content_type="text/html")

    with pytest.raises(ItsmError, match="something other than JSON"):
        ServiceNowConnector(connection()).lookup("CHG0000024")


@responses.activate
def test_an_answer_without_its_record_list_is_an_error_not_an_unknown_ticket():
    responses.get(f"{SN}/api/now/table/change_request", json={"error": {"message": "ACL"}})

    with pytest.raises(ItsmError, match="answered the lookup of CHG0000024 without a `result` list"):
        ServiceNowConnector(connection()).lookup("CHG0000024")


@responses.activate
def test_a_cached_token_the_instance_refuses_is_fetched_again_once():
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-old", "expires_in": 1799})
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-new", "expires_in": 1799})
    table = f"{SN}/api/now/table/change_request"
    responses.get(table, json={"result": [CHANGE]})
    responses.get(table, status=401, json={"error": {"message": "User Not Authenticated"}})  # revoked meanwhile
    responses.get(table, json={"result": [CHANGE]})
    connector = ServiceNowConnector(connection(auth_method="oauth", client_id="cid", client_secret="cs"))

    connector.lookup("CHG0000024")
    ticket = connector.lookup("CHG0000024")

    assert ticket.number == "CHG0000024"
    sent = [call.request.headers.get("Authorization") for call in responses.calls if call.request.method == "GET"]
    assert sent == ["Bearer sn-old", "Bearer sn-old", "Bearer sn-new"]


@responses.activate
def test_a_new_token_the_instance_refuses_is_not_retried():
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-access", "expires_in": 1799})
    responses.get(f"{SN}/api/now/table/change_request", status=401, json={})

    with pytest.raises(ItsmError, match="refused the credentials"):
        ServiceNowConnector(connection(auth_method="oauth", client_id="cid", client_secret="cs")).lookup("CHG0000024")

    assert len(responses.calls) == 2


@responses.activate
def test_oauth_client_credentials_when_no_user_or_refresh_token_is_stored():
    responses.post(f"{SN}/oauth_token.do", json={"access_token": "sn-access", "expires_in": 1799})
    responses.get(f"{SN}/api/now/table/change_request", json={"result": []})

    ServiceNowConnector(connection(auth_method="oauth", client_id="cid", client_secret="cs", username="",
                                   secret="")).lookup("CHG0000024")

    assert "grant_type=client_credentials" in responses.calls[0].request.body
