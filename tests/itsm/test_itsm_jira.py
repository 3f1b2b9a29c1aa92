"""The Jira Service Management connector against recorded REST answers (API token and OAuth 2.0)."""
import json
from datetime import datetime

import pytest
import responses

from app.itsm.base import ItsmError
from app.itsm.connections import create_connection
from app.itsm.jira import JiraConnector
from app.itsm.models import ItsmConnection

SITE = "https://acme.atlassian.net"
OPTIONS = {"start_field": "customfield_10058", "end_field": "customfield_10059"}

ISSUE = {
    "id": "10042", "key": "ITSM-42",
    "fields": {
        "summary": "Upgrade the VPN concentrator",
        "status": {"name": "Implementing", "statusCategory": {"key": "indeterminate"}},
        "reporter": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": "mrivera@acme.example",
                     "displayName": "Maria Rivera"},
        "customfield_10058": "2026-11-23T10:00:00.000+0000",
        "customfield_10059": "2026-11-23T12:30:00.000+0100",
    },
}


def approvals(*decisions):
    return {"size": len(decisions), "start": 0, "limit": 50, "isLastPage": True,
            "values": [{"id": str(i), "name": f"Step {i}", "finalDecision": d, "canAnswerApproval": False}
                       for i, d in enumerate(decisions, 1)]}


def connection(**values):
    defaults = {"name": "jsm", "kind": "jira", "base_url": SITE, "auth_method": "api_token",
                "username": "svc-jit@acme.example", "secret": "atlassian-api-token", "options": OPTIONS}
    return ItsmConnection(**{**defaults, **values})


@responses.activate
def test_an_issue_and_its_approvals_map_to_the_one_ticket_shape():
    responses.get(f"{SITE}/rest/api/3/issue/ITSM-42", json=ISSUE)
    responses.get(f"{SITE}/rest/servicedeskapi/request/ITSM-42/approval", json=approvals("approved"))

    ticket = JiraConnector(connection()).lookup("itsm-42")

    assert ticket.number == "ITSM-42"
    assert ticket.state == "Implementing"
    assert ticket.approval == "approved"
    assert ticket.window_start == datetime(2026, 11, 23, 10, 0)
    assert ticket.window_end == datetime(2026, 11, 23, 11, 30)  # +0100 converted to UTC
    assert ticket.requester == "mrivera@acme.example"
    request = responses.calls[0].request
    assert request.params["fields"] == "status,reporter,summary,customfield_10058,customfield_10059"
    assert request.headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize("decisions, approval", [
    (("approved", "declined"), "rejected"), (("pending",), "requested"), ((), "not requested"),
    (("declined", "approved"), "approved"),
])
def test_the_last_approval_step_decides(decisions, approval):
    with responses.RequestsMock() as mock:
        mock.get(f"{SITE}/rest/api/3/issue/ITSM-42", json=ISSUE)
        mock.get(f"{SITE}/rest/servicedeskapi/request/ITSM-42/approval", json=approvals(*decisions))

        assert JiraConnector(connection()).lookup("ITSM-42").approval == approval


@responses.activate
def test_an_unknown_key_is_none():
    responses.get(f"{SITE}/rest/api/3/issue/ITSM-404", status=404,
                  json={"errorMessages": ["Issue does not exist or you do not have permission to see it."]})

    assert JiraConnector(connection()).lookup("ITSM-404") is None


@responses.activate
def test_data_center_uses_api_version_2_and_the_user_name():
    issue = {"key": "OPS-7", "fields": {"status": {"name": "Approved"}, "reporter": {"name": "mrivera"}}}
    responses.get(f"{SITE}/rest/api/2/issue/OPS-7", json=issue)
    responses.get(f"{SITE}/rest/servicedeskapi/request/OPS-7/approval", json=approvals())

    ticket = JiraConnector(connection(options={"api_version": "2"})).lookup("OPS-7")

    assert (ticket.state, ticket.requester, ticket.window_start) == ("Approved", "mrivera", None)


def test_oauth_refreshes_through_atlassian_and_keeps_the_rotated_refresh_token(app):
    saved = create_connection({"name": "jsm-cloud", "kind": "jira", "auth_method": "oauth", "client_id": "cid",
                               "client_secret": "csecret", "refresh_token": "rt-1",
                               "options": {"cloud_id": "11223344-a1b2", **OPTIONS}}, "root")
    api = "https://api.atlassian.com/ex/jira/11223344-a1b2"
    with responses.RequestsMock() as mock:
        mock.post("https://auth.atlassian.com/oauth/token",
                  json={"access_token": "at-1", "refresh_token": "rt-2", "expires_in": 3600, "scope": "read:jira-work"})
        mock.get(f"{api}/rest/api/3/issue/ITSM-42", json=ISSUE)
        mock.get(f"{api}/rest/servicedeskapi/request/ITSM-42/approval", json=approvals("approved"))

        ticket = JiraConnector(saved).lookup("ITSM-42")

        sent = json.loads(mock.calls[0].request.body)
        assert sent == {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret",
                        "refresh_token": "rt-1"}
        assert mock.calls[1].request.headers["Authorization"] == "Bearer at-1"
    assert ticket.approval == "approved"
    assert ItsmConnection.get_by_id(saved.id).refresh_token == "rt-2"


@responses.activate
def test_validate_settings_asks_who_the_token_belongs_to():
    responses.get(f"{SITE}/rest/api/3/myself", json={"accountId": "x", "emailAddress": "svc-jit@acme.example"})

    assert "signed in as svc-jit@acme.example" in JiraConnector(connection()).validate_settings()


@responses.activate
def test_validate_settings_reports_a_refused_token():
    responses.get(f"{SITE}/rest/api/3/myself", status=401)

    with pytest.raises(ItsmError, match="refused the credentials"):
        JiraConnector(connection()).validate_settings()
