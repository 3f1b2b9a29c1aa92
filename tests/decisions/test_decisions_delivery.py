"""The first delivery attempt of a new decision: claimed with the decision, recorded with its calls."""
from datetime import timedelta

import peewee
import pytest

from app import contract
from app.decisions import delivery
from app.epm.client import EpmClient
from app.models import Decision, WorkNote, utcnow
from app.decisions.api import DecisionDocumentSchema
from app.logs.models import OutboundCall
from tests import factories
from tests.decisions.conftest import APPLICATION_URL, decision_calls

API = "/api/x_bets_pmc_jit"


@pytest.fixture
def ticket(deliver):
    return deliver(factories.application_request(request_id="app-claim")).json["result"]["ticket"]


@pytest.fixture
def approve(client, approver_auth):
    def approve(number):
        return client.post(f"{API}/tickets/{number}/decision", headers=approver_auth,
                           json={"decision": "Approved", "reason": "ok", "duration_unit": "once"})
    return approve


def test_the_scheduler_cannot_send_a_decision_whose_first_attempt_is_under_way(epm, approve, ticket):
    tried_meanwhile = []

    def answer(request):
        tried_meanwhile.append(delivery.deliver_due())  # a scheduler tick while EPM has not answered yet
        return 200, {}, "{}"

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    response = approve(ticket)

    assert response.status_code == 201
    assert tried_meanwhile == [0]
    assert len(decision_calls(epm)) == 1
    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.claimed_until) == (contract.DELIVERY_DELIVERED, 1, None)
    assert delivery.deliver_due() == 0


def test_a_first_attempt_that_never_finished_is_sent_again_once_its_claim_runs_out(epm, approve, ticket,
                                                                                   monkeypatch):
    def die(*_args, **_kwargs):
        raise RuntimeError("the worker was killed mid-call")

    with monkeypatch.context() as patched:
        patched.setattr(EpmClient, "send_application_decision", die)
        with pytest.raises(RuntimeError):
            approve(ticket)
    decision = Decision.get()
    assert decision.status == contract.DELIVERY_SENDING
    assert delivery.deliver_due() == 0  # its claim still runs

    Decision.update(claimed_until=utcnow() - timedelta(seconds=1)).execute()
    epm.post(APPLICATION_URL, json={})
    assert delivery.deliver_due() == 1
    decision = Decision.get()
    assert (decision.status, decision.attempts) == (contract.DELIVERY_DELIVERED, 2)
    [call] = decision_calls(epm)
    assert call.request.headers[contract.IDEMPOTENCY_HEADER] == decision.sys_id


def test_the_calls_of_an_attempt_are_recorded_with_its_outcome(epm, approve, ticket):
    epm.post(APPLICATION_URL, json={})
    approve(ticket)
    decision = Decision.get()
    calls = list(OutboundCall.select().order_by(OutboundCall.id))
    assert [(call.what, call.status, call.decision_id) for call in calls] == [
        ("token", 200, decision.id), ("application decision", 200, decision.id)]
    assert calls[1].created_at <= decision.delivered_at


def test_a_refused_attempt_records_its_call_and_stays_pending(epm, approve, ticket):
    epm.post(APPLICATION_URL, status=503)
    response = approve(ticket)
    assert response.status_code == 202
    decision = Decision.get()
    assert (decision.status, decision.last_status, decision.claimed_until) == (contract.DELIVERY_PENDING, 503, None)
    api = OutboundCall.get(OutboundCall.what == "application decision")
    assert (api.status, api.decision_id) == (503, decision.id)


def test_a_call_log_that_cannot_be_written_does_not_undo_the_delivery(epm, approve, ticket, monkeypatch):
    epm.post(APPLICATION_URL, json={})

    def broken_insert_many(*_args, **_kwargs):
        raise peewee.OperationalError("the call log table is unusable")

    monkeypatch.setattr(OutboundCall, "insert_many", broken_insert_many)
    response = approve(ticket)

    assert response.status_code == 201
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    assert WorkNote.select().where(WorkNote.text.contains("acknowledged")).count() == 1
    assert OutboundCall.select().count() == 0


@pytest.mark.parametrize("duration", [{"duration_unit": "once"}, {"duration_unit": "minutes", "duration_value": "45"}])
def test_the_acknowledged_answer_shows_the_decision_as_stored(epm, client, approver_auth, ticket, duration):
    epm.post(APPLICATION_URL, json={})
    response = client.post(f"{API}/tickets/{ticket}/decision", headers=approver_auth,
                           json={"decision": "Approved", "reason": "  ok  ", **duration})
    assert response.status_code == 201
    assert response.json["result"]["decision"] == DecisionDocumentSchema().dump(Decision.get())
