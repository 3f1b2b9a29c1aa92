"""The BMC Remedyforce connector against recorded Salesforce OAuth and SOQL query answers."""
from datetime import datetime

import pytest
import responses

from app.itsm.base import ItsmError
from app.itsm.models import ItsmConnection
from app.itsm.remedyforce import RemedyforceConnector

LOGIN = "https://login.salesforce.com/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
QUERY = f"{INSTANCE}/services/data/v59.0/query"

RECORD = {
    "attributes": {"type": "BMCServiceDesk__Change_Request__c",
                   "url": "/services/data/v59.0/sobjects/BMCServiceDesk__Change_Request__c/a2U5e000000kl6NEAQ"},
    "Id": "a2U5e000000kl6NEAQ", "Name": "00001234",
    "BMCServiceDesk__FKStatus__r": {"attributes": {"type": "BMCServiceDesk__Status__c"}, "Name": "SCHEDULED"},
    "BMCServiceDesk__Approved__c": True,
    "BMCServiceDesk__Scheduled_Start_Date__c": "2026-11-23T10:00:00.000+0000",
    "BMCServiceDesk__Scheduled_End_Date__c": "2026-11-23T12:00:00.000+0000",
    "BMCServiceDesk__FKInitiator__r": {"attributes": {"type": "User"}, "Username": "mrivera@acme.example"},
}


def connection(**values):
    defaults = {"name": "rf", "kind": "remedyforce", "auth_method": "oauth", "client_id": "3MVG9-key",
                "client_secret": "sf-secret"}
    return ItsmConnection(**{**defaults, **values})


def token(mock):
    mock.post(LOGIN, json={"access_token": "00D-session", "instance_url": INSTANCE, "token_type": "Bearer",
                           "issued_at": "1795428000000", "signature": "sig"})


@responses.activate
def test_a_change_request_maps_to_the_one_ticket_shape():
    token(responses)
    responses.get(QUERY, json={"totalSize": 1, "done": True, "records": [RECORD]})

    ticket = RemedyforceConnector(connection()).lookup("00001234")

    assert ticket.number == "00001234"
    assert ticket.state == "SCHEDULED"
    assert ticket.approval == "approved"
    assert ticket.window_start == datetime(2026, 11, 23, 10, 0)
    assert ticket.window_end == datetime(2026, 11, 23, 12, 0)
    assert ticket.requester == "mrivera@acme.example"
    assert "grant_type=client_credentials" in responses.calls[0].request.body
    query = responses.calls[1].request
    assert query.headers["Authorization"] == "Bearer 00D-session"
    assert query.params["q"].startswith("SELECT Id, Name, BMCServiceDesk__FKStatus__r.Name")
    assert query.params["q"].endswith("FROM BMCServiceDesk__Change_Request__c WHERE Name = '00001234' LIMIT 1")


@responses.activate
def test_an_unapproved_change_reads_as_requested_and_a_missing_one_as_none():
    token(responses)
    responses.get(QUERY, json={"totalSize": 1, "done": True,
                               "records": [{**RECORD, "BMCServiceDesk__Approved__c": False}]})
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    connector = RemedyforceConnector(connection())

    assert connector.lookup("00001234").approval == "requested"
    assert connector.lookup("00009999") is None


@responses.activate
def test_the_refresh_token_grant_is_used_when_a_refresh_token_is_stored():
    token(responses)
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})

    RemedyforceConnector(connection(refresh_token="5Aep-refresh")).lookup("00001234")

    assert "grant_type=refresh_token" in responses.calls[0].request.body


def test_a_reference_that_could_inject_soql_is_never_queried():
    assert RemedyforceConnector(connection()).lookup("1' OR Name != '") is None


@responses.activate  # with no answer registered: any call would fail the test
def test_a_reference_ending_in_a_line_break_is_never_queried():
    assert RemedyforceConnector(connection()).lookup("00001234\n") is None
    assert len(responses.calls) == 0


def test_a_field_option_ending_in_a_line_break_is_refused():
    with pytest.raises(ItsmError, match="not a Salesforce field name"):
        RemedyforceConnector(connection(options={"object": "BMCServiceDesk__Change_Request__c\n"})).lookup("00001234")


@responses.activate
def test_field_names_can_be_corrected_per_org():
    token(responses)
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})

    RemedyforceConnector(connection(options={"approved_field": "Custom_Approved__c"})).lookup("00001234")

    assert "Custom_Approved__c" in responses.calls[1].request.params["q"]


def test_a_field_option_that_is_not_a_field_name_is_refused():
    with pytest.raises(ItsmError, match="not a Salesforce field name"):
        RemedyforceConnector(connection(options={"object": "X WHERE 1=1"})).lookup("00001234")


@responses.activate
def test_validate_settings_queries_the_object():
    token(responses)
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})

    message = RemedyforceConnector(connection()).validate_settings()

    assert message == ("Settings OK: BMC Remedyforce 'rf' answered "
                       "(BMCServiceDesk__Change_Request__c readable).")


@responses.activate
def test_validate_settings_reports_a_refused_client():
    responses.post(LOGIN, status=400, json={"error": "invalid_client", "error_description": "invalid client"})

    with pytest.raises(ItsmError, match="HTTP 400"):
        RemedyforceConnector(connection()).validate_settings()


@responses.activate
def test_a_session_that_ended_early_is_renewed_once():
    responses.post(LOGIN, json={"access_token": "00D-old", "instance_url": INSTANCE})
    responses.post(LOGIN, json={"access_token": "00D-new", "instance_url": INSTANCE})
    responses.get(QUERY, json={"totalSize": 0, "done": True, "records": []})
    responses.get(QUERY, status=401,
                  json=[{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
    responses.get(QUERY, json={"totalSize": 1, "done": True, "records": [RECORD]})
    connector = RemedyforceConnector(connection())

    assert connector.lookup("00001234") is None
    assert connector.lookup("00001234").approval == "approved"

    sent = [call.request.headers["Authorization"] for call in responses.calls if call.request.method == "GET"]
    assert sent == ["Bearer 00D-old", "Bearer 00D-old", "Bearer 00D-new"]
