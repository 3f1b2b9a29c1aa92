"""Every call to EPM is recorded: token and API, method, path, status, duration, attempt, bodies without secrets."""
import json

import responses

from app.decisions import delivery
from app.models import Decision
from app.logs.models import OutboundCall
from app.logs.outbound import call_purpose, store_outbound_call
from app.db import write_transaction
from app.logs import store as log_store
from tests.logs.conftest import (
    ACCESS_TOKEN, APPLICATION_LIST_URL, APPLICATION_URL, CLIENT_SECRET, TOKEN_URL,
)

DECISION = "/api/x_bets_pmc_jit/tickets/{}/decision"


def calls():
    return list(OutboundCall.select().order_by(OutboundCall.id))


def everything_stored(rows):
    return json.dumps([{name: str(getattr(row, name)) for name in OutboundCall._meta.fields} for row in rows])


def approve(client, auth, number):
    answer = client.post(DECISION.format(number), headers=auth,
                         json={"decision": "Approved", "reason": "Needed for the release", "duration_unit": "once"})
    assert answer.status_code in (201, 202), answer.get_data(as_text=True)
    return Decision.get(Decision.sys_id == answer.json["result"]["decision"]["sys_id"])


def test_a_delivered_decision_records_the_token_call_and_the_decision_call(app, epm, client, approver_auth,
                                                                           make_ticket):
    ticket = make_ticket()
    decision = approve(client, approver_auth, ticket.number)

    token, api = calls()
    assert (token.what, token.method, token.path, token.status, token.attempt) == (
        "token", "POST", "/oauth/connect/token", 200, 1)
    assert token.url == TOKEN_URL
    assert (api.what, api.method, api.path, api.status, api.attempt) == (
        "application decision", "POST", "/management-api/v2/AuthorizationRequest/notification", 200, 1)
    assert api.url == APPLICATION_URL
    assert token.duration_ms >= 0 and api.duration_ms >= 0
    assert token.decision_id == api.decision_id == decision.id
    assert api.error is None and api.succeeded
    sent = json.loads(api.request_body)
    assert sent["ticketId"] == ticket.number and sent["decision"] == "Approved"


def test_no_secret_or_token_is_stored(app, epm, client, approver_auth, make_ticket):
    approve(client, approver_auth, make_ticket().number)

    rows = calls()
    stored = everything_stored(rows)
    assert CLIENT_SECRET not in stored
    assert ACCESS_TOKEN not in stored
    token = rows[0]
    assert "client_secret=********" in token.request_body
    assert '"access_token": "********"' in token.response_body


def test_a_refused_call_is_recorded_with_its_status_and_error(app, epm, client, approver_auth, make_ticket):
    epm.replace(responses.POST, APPLICATION_URL, status=503, json={"message": "maintenance"})
    ticket = make_ticket()

    decision = approve(client, approver_auth, ticket.number)

    assert decision.status == "pending"
    api = calls()[-1]
    assert (api.what, api.status, api.error) == ("application decision", 503, "HTTP 503")
    assert "maintenance" in api.response_body
    assert not api.succeeded


def test_a_retry_records_a_new_attempt_linked_to_the_same_decision(app, epm, client, approver_auth, make_ticket):
    epm.replace(responses.POST, APPLICATION_URL, status=503)
    decision = approve(client, approver_auth, make_ticket().number)
    epm.replace(responses.POST, APPLICATION_URL, json={})

    delivery.retry_now(decision)

    decision_calls = [call for call in calls() if call.what == "application decision"]
    assert [call.status for call in decision_calls] == [503, 200]
    assert {call.decision_id for call in decision_calls} == {decision.id}


def test_the_test_connection_command_records_its_calls(app, epm, runner):
    result = runner.invoke(args=["test-connection"])

    assert result.exit_code == 0, result.output
    assert "Connection OK" in result.output
    assert [(call.what, call.method, call.status, call.decision_id) for call in calls()] == [
        ("token", "POST", 200, None), ("application request list", "GET", 200, None)]
    assert calls()[1].url.startswith(APPLICATION_LIST_URL)


def test_the_test_connection_button_records_its_calls(app, epm, as_admin):
    answer = as_admin.post("/admin/configuration/test")

    assert answer.status_code == 302
    assert [call.what for call in calls()] == ["token", "application request list"]


def test_a_refused_token_is_recorded(app, epm, runner):
    epm.replace(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})

    result = runner.invoke(args=["test-connection"])

    assert result.exit_code != 0
    (token,) = calls()
    assert (token.what, token.status) == ("token", 401)
    assert "(HTTP 401: invalid_client)" in token.error and "Check the client ID and client secret" in token.error
    assert CLIENT_SECRET not in everything_stored([token])


def test_a_call_reported_inside_a_transaction_is_stored_outside_it(app):
    report = {"method": "GET", "url": "https://x/management-api/v3/AdminAccessRequest", "status": 200,
              "path": "/management-api/v3/AdminAccessRequest", "duration_ms": 12.5, "attempt": 1,
              "request_body": None, "response_body": "{}", "error": None}
    try:
        with write_transaction():
            store_outbound_call(report, "admin request list")
            raise RuntimeError("the caller's transaction fails")
    except RuntimeError:
        pass

    assert log_store.flush(10)
    (call,) = calls()
    assert (call.what, call.duration_ms, call.status) == ("admin request list", 12.5, 200)


def test_call_purposes_follow_the_configured_paths(app):
    class Configured:
        token_path = "/connect/token"
        application_decision_path = "/management-api/v3/AuthorizationRequest/notification"
        admin_decision_path = "/management-api/v3/AdminAccessRequest/approval"

    assert call_purpose("/connect/token", Configured) == "token"
    assert call_purpose("/management-api/v3/AuthorizationRequest/notification", Configured) == "application decision"
    assert call_purpose("/management-api/v3/AdminAccessRequest/abc-123") == "admin request"
    assert call_purpose("/elsewhere") == "other"


def test_outbound_calls_page_and_api_list_the_calls(app, epm, client, approver_auth, admin_auth, as_admin,
                                                    make_ticket):
    ticket = make_ticket()
    approve(client, approver_auth, ticket.number)

    listed = client.get("/api/x_bets_pmc_jit/ops/outbound_calls?what=application%20decision", headers=admin_auth)
    (document,) = listed.json["result"]
    assert (document["status"], document["ticket"], document["attempt"]) == (200, ticket.number, 1)
    one = client.get(f"/api/x_bets_pmc_jit/ops/outbound_calls/{document['sys_id']}", headers=admin_auth).json
    assert json.loads(one["result"]["request_body"])["ticketId"] == ticket.number

    page = as_admin.get(f"/admin/outbound?ticket={ticket.number}").get_data(as_text=True)
    assert "/oauth/connect/token" in page and "/management-api/v2/AuthorizationRequest/notification" in page
    failed = as_admin.get("/admin/outbound?outcome=failed").get_data(as_text=True)
    assert "No calls match these filters." in failed
    detail = as_admin.get(f"/admin/outbound/{document['sys_id']}").get_data(as_text=True)
    assert "&#34;ticketId&#34;: &#34;" + ticket.number in detail


def test_the_correlation_ids_of_a_decision_call_are_stored_and_shown(app, epm, client, approver_auth, admin_auth,
                                                                     as_admin, make_ticket):
    epm.replace(responses.POST, APPLICATION_URL, json={}, headers={"x-correlation-id": "epm-trace-42"})
    ticket = make_ticket()
    approve(client, approver_auth, ticket.number)

    token, api = calls()
    request_id = ticket.jit_request.request_id
    assert epm.calls[-1].request.headers["x-correlation-id"] == request_id
    assert (token.correlation_id, token.answered_correlation_id) == (None, None)
    assert (api.correlation_id, api.answered_correlation_id) == (request_id, "epm-trace-42")
    document = client.get(f"/api/x_bets_pmc_jit/ops/outbound_calls/{api.sys_id}", headers=admin_auth).json["result"]
    assert (document["correlation_id"], document["answered_correlation_id"]) == (request_id, "epm-trace-42")
    detail = as_admin.get(f"/admin/outbound/{api.sys_id}").get_data(as_text=True)
    assert "Correlation ID sent" in detail and request_id in detail
    assert "Correlation ID answered" in detail and "epm-trace-42" in detail
