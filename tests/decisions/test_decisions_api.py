"""Deciding through the JSON API: the contract's rules, the body EPM receives, exactly once."""
import socket

import pytest

from app import contract
from app.models import Account, Configuration, Decision, Task, WorkNote, utcnow
from app.decisions import delivery
from tests import factories
from tests.decisions.conftest import ADMIN_URL, APPLICATION_URL, decision_calls, sent_body

API = "/api/x_bets_pmc_jit"


@pytest.fixture
def application_ticket(deliver):
    return deliver(factories.application_request(request_id="app-d1")).json["result"]["ticket"]


@pytest.fixture
def admin_ticket(deliver):
    return deliver(factories.admin_request(request_id="adm-d1")).json["result"]["ticket"]


@pytest.fixture
def decide(client, approver_auth):
    def decide(number, **body):
        return client.post(f"{API}/tickets/{number}/decision", json=body, headers=approver_auth)
    return decide


def test_approving_once_sends_the_contract_body_to_epm(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, json={})
    response = decide(application_ticket, decision="Approved", reason="VPN update approved", duration_unit="once")
    assert response.status_code == 201
    assert response.json["result"]["decision"]["delivery_status"] == contract.DELIVERY_DELIVERED
    [call] = decision_calls(epm)
    task = Task.get(Task.number == application_ticket)
    body = sent_body(call)
    assert body == {
        "status": "2000", "decision": "Approved", "decisionPerformedByUser": "jchen", "duration": "Once",
        "itsmRequestId": "app-d1", "decisionTime": body["decisionTime"], "message": "VPN update approved",
        "systemId": task.sys_id, "ticketId": application_ticket,
        "ticketUrl": f"http://{socket.getfqdn()}:8000/tickets/{application_ticket}",  # public_url unset
    }
    assert len(body["decisionTime"]) == 19
    assert call.request.headers["Authorization"] == "Bearer token-1"
    assert call.request.headers[contract.IDEMPOTENCY_HEADER] == Decision.get().sys_id


@pytest.mark.parametrize("unit, value, seconds", [("minutes", 30, "1800"), ("minutes", "5", "300"),
                                                  ("hours", 24, "86400"), ("hours", 1, "3600"),
                                                  ("hours", 11.0, "39600")])
def test_durations_are_sent_in_seconds(epm, decide, application_ticket, unit, value, seconds):
    epm.post(APPLICATION_URL, json={})
    decide(application_ticket, decision="Approved", reason="ok", duration_unit=unit, duration_value=value)
    assert sent_body(decision_calls(epm)[0])["duration"] == seconds


def test_denying_application_access_sends_status_2001(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, json={})
    decide(application_ticket, decision="Denied", reason="Not a business need")
    body = sent_body(decision_calls(epm)[0])
    assert (body["status"], body["decision"], body["message"]) == ("2001", "Denied", "Not a business need")


def test_admin_access_approval_goes_to_the_admin_endpoint(epm, decide, admin_ticket):
    epm.post(ADMIN_URL, json={})
    decide(admin_ticket, decision="Approved", reason="printer driver", duration_unit="minutes", duration_value=30)
    [call] = decision_calls(epm)
    body = sent_body(call)
    assert call.request.url == ADMIN_URL
    assert (body["requestId"], body["decision"], body["duration"]) == ("adm-d1", "Approved", "1800")
    assert body["ticketId"] == admin_ticket


def test_admin_access_once_sends_the_configured_value_and_application_access_still_sends_once(
        epm, decide, admin_ticket, application_ticket):
    """contract/epm.md 5.8: Admin Access "Once" has no confirmed wire value, so it is a setting."""
    Configuration.update(admin_once_duration="0").execute()
    epm.post(ADMIN_URL, json={})
    epm.post(APPLICATION_URL, json={})
    decide(admin_ticket, decision="Approved", reason="printer driver", duration_unit="once")
    decide(application_ticket, decision="Approved", reason="VPN update", duration_unit="once")
    admin_call, application_call = decision_calls(epm)
    assert (admin_call.request.url, sent_body(admin_call)["duration"]) == (ADMIN_URL, "0")
    assert (application_call.request.url, sent_body(application_call)["duration"]) == (APPLICATION_URL, "Once")


def test_admin_access_denial_leaves_out_the_duration(epm, decide, admin_ticket):
    epm.post(ADMIN_URL, json={})
    decide(admin_ticket, decision="Denied", reason="no")
    assert "duration" not in sent_body(decision_calls(epm)[0])


@pytest.mark.parametrize("body, message", [
    ({"decision": "Approved", "reason": "  ", "duration_unit": "once"}, contract.MSG_REASON_REQUIRED),
    ({"decision": "Denied"}, contract.MSG_REASON_REQUIRED),
    ({"decision": "Approved", "reason": "x", "duration_unit": "minutes", "duration_value": 4},
     contract.MSG_MINUTES_RANGE),
    ({"decision": "Approved", "reason": "x", "duration_unit": "minutes", "duration_value": 1441},
     contract.MSG_MINUTES_RANGE),
    ({"decision": "Approved", "reason": "x", "duration_unit": "minutes", "duration_value": "ten"},
     contract.MSG_MINUTES_RANGE),
    ({"decision": "Approved", "reason": "x", "duration_unit": "minutes", "duration_value": 7.5},
     contract.MSG_MINUTES_RANGE),
    ({"decision": "Approved", "reason": "x", "duration_unit": "hours", "duration_value": 0}, contract.MSG_HOURS_RANGE),
    ({"decision": "Approved", "reason": "x", "duration_unit": "hours", "duration_value": 25}, contract.MSG_HOURS_RANGE),
])
def test_broken_rules_answer_the_contract_message_and_send_nothing(epm, decide, application_ticket, body, message):
    response = decide(application_ticket, **body)
    assert response.status_code == 400
    assert response.json["error"]["message"] == message
    assert decision_calls(epm) == []
    assert Decision.select().count() == 0


def test_an_inactive_ticket_cannot_be_decided(epm, decide, application_ticket):
    Task.update(state=7).execute()
    response = decide(application_ticket, decision="Denied", reason="late")
    assert response.status_code == 409
    assert response.json["error"]["message"] == contract.MSG_INACTIVE
    assert decision_calls(epm) == []


def test_active_states_come_from_the_configuration(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, json={})
    Configuration.update(active_states="On Hold").execute()
    assert decide(application_ticket, decision="Denied", reason="x").status_code == 409
    Task.update(state=3).execute()
    assert decide(application_ticket, decision="Denied", reason="x").status_code == 201


def test_an_acknowledged_decision_is_final(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, json={})
    decide(application_ticket, decision="Denied", reason="first")
    response = decide(application_ticket, decision="Approved", reason="second", duration_unit="once")
    assert response.status_code == 409
    assert response.json["error"]["message"] == contract.MSG_FINAL
    assert len(decision_calls(epm)) == 1


def test_a_decision_in_flight_blocks_another_and_is_retried_once_epm_is_back(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, status=503)
    first = decide(application_ticket, decision="Approved", reason="ok", duration_unit="once")
    assert first.status_code == 202
    assert first.json["result"]["decision"]["delivery_status"] == contract.DELIVERY_PENDING
    second = decide(application_ticket, decision="Denied", reason="changed my mind")
    assert second.status_code == 409
    assert second.json["error"]["message"] == contract.MSG_DECISION_IN_FLIGHT
    epm.replace("POST", APPLICATION_URL, json={})
    assert delivery.deliver_due() == 0  # not due yet: the backoff holds it
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    assert delivery.deliver_due() == 1
    decision = Decision.get()
    assert (decision.status, decision.attempts) == (contract.DELIVERY_DELIVERED, 2)
    keys = {call.request.headers[contract.IDEMPOTENCY_HEADER] for call in decision_calls(epm)}
    assert keys == {decision.sys_id}
    assert delivery.deliver_due() == 0
    assert len(decision_calls(epm)) == 2


def test_retry_after_from_epm_sets_the_next_attempt(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, status=429, headers={"Retry-After": "600"})
    decide(application_ticket, decision="Denied", reason="x")
    decision = Decision.get()
    assert (decision.next_attempt_at - decision.decided_at).total_seconds() >= 590


def test_a_refused_decision_fails_visibly_and_the_ticket_can_be_decided_again(epm, decide, application_ticket):
    epm.post(APPLICATION_URL, status=400, json={"message": "itsmRequestId unknown"})
    response = decide(application_ticket, decision="Denied", reason="x")
    assert response.json["result"]["decision"]["delivery_status"] == contract.DELIVERY_FAILED
    assert "itsmRequestId unknown" in response.json["result"]["decision"]["last_error"]
    assert WorkNote.select().where(WorkNote.text.contains("failed permanently")).count() == 1
    epm.replace("POST", APPLICATION_URL, json={})
    assert decide(application_ticket, decision="Denied", reason="again").status_code == 201


def test_epm_unconfigured_keeps_the_decision_pending(app, client, approver_auth, deliver):
    number = deliver(factories.application_request()).json["result"]["ticket"]
    response = client.post(f"{API}/tickets/{number}/decision", headers=approver_auth,
                           json={"decision": "Denied", "reason": "x"})
    assert response.status_code == 202
    assert response.json["result"]["decision"]["delivery_status"] == contract.DELIVERY_PENDING


def test_the_api_role_and_anonymous_cannot_decide(client, api_auth, application_ticket):
    body = {"decision": "Denied", "reason": "x"}
    assert client.post(f"{API}/tickets/{application_ticket}/decision", json=body, headers=api_auth).status_code == 403
    assert client.post(f"{API}/tickets/{application_ticket}/decision", json=body).status_code == 401


def test_patch_changes_state_and_adds_a_work_note(client, approver_auth, application_ticket):
    response = client.patch(f"{API}/tickets/{application_ticket}", headers=approver_auth,
                            json={"state": "In Progress", "work_note": "Calling the user"})
    assert response.status_code == 200
    ticket = response.json["result"]
    assert ticket["state"] == "In Progress"
    texts = [note["text"] for note in ticket["work_notes"]]
    assert "Calling the user" in texts
    assert any("from New to In Progress by jchen" in text for text in texts)


@pytest.mark.parametrize("body", [{"state": "Sleeping"}, {"colour": "red"}, {}, {"work_note": "  "}])
def test_patch_rejects_unknown_states_and_fields(client, approver_auth, application_ticket, body):
    assert client.patch(f"{API}/tickets/{application_ticket}", headers=approver_auth, json=body).status_code == 400


def test_epms_update_after_the_decision_shows_the_finalized_decision(epm, decide, deliver, application_ticket):
    epm.post(APPLICATION_URL, json={})
    decide(application_ticket, decision="Approved", reason="ok", duration_unit="hours", duration_value=1)
    deliver(factories.application_decision("app-d1"))
    ticket = Task.get(Task.number == application_ticket)
    assert ticket.jit_request.final_decision == "Approved"
    assert ticket.jit_request.final_duration == "3600"


@pytest.mark.parametrize("app_settings", [{"oidc_issuer": "http://127.0.0.1:9/idp", "oidc_client_id": "broker",
                                           "oidc_approver_groups": "approvers"}])
def test_an_admin_access_approval_by_a_provider_account_answers_a_link_to_the_ticket_page(
        epm, client, approver, approver_auth, admin_ticket, application_ticket):
    """Only a fresh browser authentication may record it (app/auth/step_up.py); a denial and Application Access
    go through. (The approver keeps a password here only to reach the API door; the provider vouched a moment ago.)"""
    Account.update(idp_issuer="http://127.0.0.1:9/idp", idp_subject="00u7", idp_tokens='{"refresh_token": "r"}',
                   idp_checked_at=utcnow()).where(Account.id == approver.id).execute()
    epm.post(APPLICATION_URL, json={})
    answer = client.post(f"{API}/tickets/{admin_ticket}/decision", headers=approver_auth,
                         json={"decision": "Approved", "reason": "ok", "duration_unit": "once"})
    assert answer.status_code == 403
    assert answer.json["ticket_url"].endswith(f"/tickets/{admin_ticket}")
    assert "fresh sign-in" in answer.json["error"]["message"]
    assert Decision.select().count() == 0 and decision_calls(epm) == []
    approved = client.post(f"{API}/tickets/{application_ticket}/decision", headers=approver_auth,
                           json={"decision": "Approved", "reason": "ok", "duration_unit": "once"})
    assert approved.status_code == 201
