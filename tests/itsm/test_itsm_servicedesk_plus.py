"""The ServiceDesk Plus connectors (on-premises, MSP, Cloud) against recorded API v3 answers."""
import json
from datetime import datetime

import pytest
import responses

from app.itsm.base import ItsmError
from app.itsm.models import ItsmConnection
from app.itsm.servicedesk_plus import (
    ServiceDeskPlusCloudConnector, ServiceDeskPlusConnector, ServiceDeskPlusMspConnector,
)

SDP = "https://sdp.acme.example:8080"
ACCEPT = "application/vnd.manageengine.sdp.v3+json"

CHANGE = {
    "change": {
        "id": "42", "title": "Upgrade the VPN concentrator",
        "status": {"id": "5", "name": "Approved"},
        "approval_status": {"id": "2", "name": "Approved"},
        "scheduled_start_time": {"display_value": "Nov 23, 2026 10:00 AM", "value": "1795428000000"},
        "scheduled_end_time": {"display_value": "Nov 23, 2026 12:00 PM", "value": "1795435200000"},
        "change_requester": {"id": "9", "name": "Maria Rivera", "email_id": "mrivera@acme.example"},
    },
    "response_status": {"status_code": 2000, "status": "success"},
}


def connection(kind="sdp", **values):
    defaults = {"name": "sdp", "kind": kind, "base_url": SDP, "auth_method": "technician_key",
                "secret": "6FXXXXX2-0XXX-TECH-KEY"}
    return ItsmConnection(**{**defaults, **values})


@responses.activate
def test_a_change_maps_to_the_one_ticket_shape():
    responses.get(f"{SDP}/api/v3/changes/42", json=CHANGE)

    ticket = ServiceDeskPlusConnector(connection()).lookup("CH-42")

    assert ticket.state == "Approved"
    assert ticket.approval == "approved"
    assert ticket.window_start == datetime(2026, 11, 23, 10, 0)
    assert ticket.window_end == datetime(2026, 11, 23, 12, 0)
    assert ticket.requester == "mrivera@acme.example"
    request = responses.calls[0].request
    assert request.headers["authtoken"] == "6FXXXXX2-0XXX-TECH-KEY"
    assert request.headers["Accept"] == ACCEPT


@responses.activate
def test_requests_are_read_when_the_module_option_says_so():
    responses.get(f"{SDP}/api/v3/requests/1001", json={"request": {
        "id": "1001", "status": {"name": "Open"}, "approval_status": {"name": "Pending Approval"},
        "requester": {"name": "Maria Rivera", "email_id": "mrivera@acme.example"}}})

    ticket = ServiceDeskPlusConnector(connection(options={"module": "requests"})).lookup("#1001")

    assert (ticket.state, ticket.approval, ticket.requester) == ("Open", "requested", "mrivera@acme.example")


@pytest.mark.parametrize("name, approval", [("Rejected", "rejected"), ("Denied", "rejected"), ("", "not requested")])
def test_approval_status_names_map_to_one_vocabulary(name, approval):
    change = json.loads(json.dumps(CHANGE))
    change["change"]["approval_status"] = {"name": name} if name else None
    with responses.RequestsMock() as mock:
        mock.get(f"{SDP}/api/v3/changes/42", json=change)
        assert ServiceDeskPlusConnector(connection()).lookup("42").approval == approval


@responses.activate
def test_a_reference_without_digits_is_not_looked_up_and_a_404_is_none():
    responses.get(f"{SDP}/api/v3/changes/7", status=404, json={"response_status": {"status_code": 4000}})
    connector = ServiceDeskPlusConnector(connection())

    assert connector.lookup("CH-none") is None
    assert connector.lookup("CH-7") is None
    assert len(responses.calls) == 1


@responses.activate
def test_msp_reads_the_same_api_with_a_technician_key():
    responses.get(f"{SDP}/api/v3/changes/42", json=CHANGE)

    ticket = ServiceDeskPlusMspConnector(connection("sdp_msp")).lookup("42")

    assert ticket.approval == "approved"
    assert responses.calls[0].request.headers["authtoken"] == "6FXXXXX2-0XXX-TECH-KEY"


@responses.activate
def test_cloud_refreshes_a_zoho_token_and_reads_the_portal():
    responses.post("https://accounts.zoho.com/oauth/v2/token",
                   json={"access_token": "1000.zoho-access", "api_domain": "https://www.zohoapis.com",
                         "token_type": "Bearer", "expires_in": 3600})
    responses.get("https://sdpondemand.manageengine.com/app/itdesk/api/v3/changes/42", json=CHANGE)
    cloud = connection("sdp_cloud", base_url="", auth_method="zoho_oauth", secret="", client_id="1000.CID",
                       client_secret="zoho-secret", refresh_token="1000.refresh", options={"portal": "itdesk"})

    ticket = ServiceDeskPlusCloudConnector(cloud).lookup("42")

    token_form = responses.calls[0].request.body
    assert "grant_type=refresh_token" in token_form and "refresh_token=1000.refresh" in token_form
    assert "zoho-secret" not in responses.calls[0].request.url
    assert responses.calls[1].request.headers["Authorization"] == "Zoho-oauthtoken 1000.zoho-access"
    assert ticket.state == "Approved"


@responses.activate
def test_cloud_reports_a_refused_refresh_token():
    responses.post("https://accounts.zoho.com/oauth/v2/token", json={"error": "invalid_code"})
    cloud = connection("sdp_cloud", auth_method="zoho_oauth", client_id="c", client_secret="s", refresh_token="r",
                       options={"portal": "itdesk"})

    with pytest.raises(ItsmError, match="no access token .invalid_code."):
        ServiceDeskPlusCloudConnector(cloud).lookup("42")


@responses.activate
def test_validate_settings_lists_one_change():
    responses.get(f"{SDP}/api/v3/changes", json={"changes": [], "response_status": [{"status_code": 2000}],
                                                 "list_info": {"row_count": 0}})

    assert ServiceDeskPlusConnector(connection()).validate_settings().startswith("Settings OK")
    assert json.loads(responses.calls[0].request.params["input_data"]) == {"list_info": {"row_count": 1}}


@responses.activate
def test_msp_validate_settings_lists_one_change_with_the_technician_key():
    responses.get(f"{SDP}/api/v3/changes", json={"changes": [], "response_status": [{"status_code": 2000}]})

    message = ServiceDeskPlusMspConnector(connection("sdp_msp")).validate_settings()

    assert message == "Settings OK: ServiceDesk Plus MSP 'sdp' answered (changes readable)."
    assert responses.calls[0].request.headers["authtoken"] == "6FXXXXX2-0XXX-TECH-KEY"


@responses.activate
def test_cloud_validate_settings_refreshes_the_token_and_lists_one_change_in_the_portal():
    responses.post("https://accounts.zoho.eu/oauth/v2/token", json={"access_token": "1000.eu", "expires_in": 3600})
    responses.get("https://sdpondemand.manageengine.com/app/itdesk/api/v3/changes",
                  json={"changes": [], "response_status": [{"status_code": 2000}]})
    cloud = connection("sdp_cloud", base_url="", auth_method="zoho_oauth", secret="", client_id="1000.CID",
                       client_secret="zoho-secret", refresh_token="1000.refresh",
                       options={"portal": "itdesk", "accounts_url": "https://accounts.zoho.eu"})

    message = ServiceDeskPlusCloudConnector(cloud).validate_settings()

    assert message == "Settings OK: ServiceDesk Plus Cloud 'sdp' answered (changes readable)."
    assert responses.calls[1].request.headers["Authorization"] == "Zoho-oauthtoken 1000.eu"


@responses.activate
def test_validate_settings_reports_a_refused_technician_key():
    responses.get(f"{SDP}/api/v3/changes", status=401, json={"response_status": {"status_code": 4000}})

    with pytest.raises(ItsmError, match="refused the credentials for the settings check .HTTP 401."):
        ServiceDeskPlusConnector(connection()).validate_settings()


def test_an_unknown_module_option_is_refused():
    with pytest.raises(ItsmError, match="option module must be changes or requests, not 'problems'"):
        ServiceDeskPlusConnector(connection(options={"module": "problems"})).lookup("42")
