"""The JSON read API: tickets for approvers, deliveries for admins."""
import pytest

from tests import factories

API = "/api/x_bets_pmc_jit"


@pytest.fixture
def two_tickets(deliver):
    app_request = factories.application_request(request_id="app-r1")
    deliver(app_request)
    deliver(factories.admin_request(request_id="adm-r1"))
    deliver(factories.admin_decision("adm-r1"))
    return app_request


def test_ticket_shows_state_kind_request_id_details_and_decision(client, approver_auth, two_tickets):
    response = client.get(f"{API}/tickets/INC0010002", headers=approver_auth)
    assert response.status_code == 200
    ticket = response.json["result"]
    assert ticket["number"] == "INC0010002"
    assert ticket["state"] == "New"
    assert ticket["kind"] == "admin"
    assert ticket["kind_label"] == "Admin Access"
    assert ticket["request_id"] == "adm-r1"
    assert ticket["details"]["user_name"] == "CORP\\akowalski"
    assert ticket["details"]["duration_requested"] == "1800"
    assert ticket["epm_decision"]["decision"] == "Approved"
    assert ticket["epm_decision"]["final"] is True
    assert ticket["epm_decision"]["start_time"].startswith("2026-11-20T15:12:03")


def test_application_ticket_carries_every_request_info_key(client, approver_auth, two_tickets):
    ticket = client.get(f"{API}/tickets/inc0010001", headers=approver_auth).json["result"]
    assert ticket["details"]["request_info"]["sha1Hash"] == two_tickets["requestInfo"]["sha1Hash"]
    assert set(two_tickets["requestInfo"]) <= set(ticket["details"]["request_info"])


def test_unknown_ticket_is_404_in_servicenow_shape(client, approver_auth):
    response = client.get(f"{API}/tickets/INC9999999", headers=approver_auth)
    assert response.status_code == 404
    assert response.json["status"] == "failure"
    assert "INC9999999" in response.json["error"]["message"]


def test_list_is_newest_first_and_filters_by_request_id_and_state(client, admin_auth, two_tickets):
    listed = client.get(f"{API}/tickets", headers=admin_auth).json["result"]
    assert [t["number"] for t in listed] == ["INC0010002", "INC0010001"]
    by_request = client.get(f"{API}/tickets?request_id=app-r1", headers=admin_auth).json["result"]
    assert [t["number"] for t in by_request] == ["INC0010001"]
    assert client.get(f"{API}/tickets?state=Closed", headers=admin_auth).json["result"] == []
    assert len(client.get(f"{API}/tickets?state=New&limit=1", headers=admin_auth).json["result"]) == 1


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=100000", "state=Nonsense"])
def test_bad_list_queries_are_400_with_the_field(client, approver_auth, query):
    response = client.get(f"{API}/tickets?{query}", headers=approver_auth)
    assert response.status_code == 400
    assert query.split("=")[0] in response.json["fields"]


def test_the_api_role_cannot_read_tickets(client, api_auth, two_tickets):
    assert client.get(f"{API}/tickets/INC0010001", headers=api_auth).status_code == 403
    assert client.get(f"{API}/tickets", headers=api_auth).status_code == 403


def test_anonymous_reads_are_401(client, two_tickets):
    assert client.get(f"{API}/tickets/INC0010001").status_code == 401


def test_incoming_requests_are_for_admins_only(client, approver_auth, api_auth, admin_auth, two_tickets):
    assert client.get(f"{API}/incoming_requests", headers=approver_auth).status_code == 403
    assert client.get(f"{API}/incoming_requests", headers=api_auth).status_code == 403
    rows = client.get(f"{API}/incoming_requests", headers=admin_auth).json["result"]
    assert [row["event_type"] for row in rows] == [
        "JIT_ADMIN_TICKET_UPDATED", "JIT_ADMIN_TICKET_CREATED", "URM_Native_Ticket_Created"]
    assert rows[0]["ticket"] == "INC0010002"


def test_incoming_requests_filter_by_status_and_request_id(client, admin_auth, deliver):
    deliver(factories.admin_decision("waiting-1"))
    deliver(b"{broken")
    received = client.get(f"{API}/incoming_requests?status=received", headers=admin_auth).json["result"]
    assert [row["request_id"] for row in received] == ["waiting-1"]
    errors = client.get(f"{API}/incoming_requests?status=error", headers=admin_auth).json["result"]
    assert errors[0]["body"] == "{broken"
    by_id = client.get(f"{API}/incoming_requests?request_id=waiting-1", headers=admin_auth).json["result"]
    assert len(by_id) == 1
    assert client.get(f"{API}/incoming_requests?status=bogus", headers=admin_auth).status_code == 400
