"""The first delivery attempt of a new decision: claimed with the decision, recorded with its calls."""
import json
from datetime import datetime, timedelta

import peewee
import requests
import pytest

from app import contract, events
from app.audit.models import AuditEntry
from app.decisions import delivery
from app.epm.client import EpmClient
from app.models import Configuration, Decision, Task, WorkNote, utcnow
from app.decisions.api import DecisionDocumentSchema
from app.logs.models import OutboundCall
from tests import factories
from tests.conftest import basic_auth
from tests.decisions.conftest import APPLICATION_RECORDS_URL, APPLICATION_URL, decision_calls
from tests.outcomes import assert_outcome_kept

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


# --- A 409 "already decided": EPM's record tells whose decision stands ----------------------------------

ALREADY_DECIDED = {"message": "Request app-claim has already been decided"}
RECORD_URL = f"{APPLICATION_RECORDS_URL}/app-claim"


def epm_record(status, **decided):
    """EPM's AuthorizationRequest for the ticket's request (contract/epm.md §5.1)."""
    return {"id": "app-claim", "requestInfo": {"user": "ACME\\jdoe", "created": "2026-11-22T05:00:00Z"},
            "serviceTicket": {}, "accessDecision": {"status": status, **decided}}


def denied_in_epm():
    """EPM's record after an admin denied the request in EPM's console: a one-element array (§5.2)."""
    return [epm_record("Denied", decisionPerformedByUser="epm-admin", decisionTime="2026-11-22 05:01:00")]


def notes(number):
    return [note.text for note in Task.get(Task.number == number).work_notes.order_by(WorkNote.id)]


def test_an_approval_epm_had_already_denied_shows_epm_s_denial_and_is_not_applied(epm, approve, ticket):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=denied_in_epm())
    response = approve(ticket)

    assert response.status_code == 202
    decision = Decision.get()
    assert (decision.status, decision.last_status, decision.delivered_at) == (contract.DELIVERY_FAILED, 409, None)
    assert "EPM had already decided request app-claim" in decision.last_error
    task = Task.get(Task.number == ticket)
    jit = task.jit_request
    assert (jit.decision_final, jit.final_decision, jit.final_decision_by) == (True, "Denied", "epm-admin")
    assert assert_outcome_kept(task)[:2] == ("Denied", "epm-admin")
    [not_applied] = [text for text in notes(ticket) if text.startswith("Not applied in EPM")]
    assert "The Approved decision by jchen was not applied" in not_applied and "epm-admin" in not_applied
    assert not [text for text in notes(ticket) if "acknowledged" in text]
    audit = AuditEntry.get(AuditEntry.action == delivery.AUDIT_NOT_APPLIED)
    assert (audit.detail["decision"], audit.detail["epm_decision"]) == ("Approved", "Denied")


def test_epm_s_decision_is_shown_even_when_its_record_holds_a_value_the_intake_refuses(epm, approve, ticket):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    record = epm_record("Denied", decisionPerformedByUser="epm-admin")
    record["requestInfo"]["ticketId"] = "100\u0007231"  # an id with a control character
    epm.get(RECORD_URL, json=record)
    approve(ticket)
    jit = Task.get(Task.number == ticket).jit_request
    assert (jit.decision_final, jit.final_decision, jit.final_decision_by) == (True, "Denied", None)
    assert Decision.get().status == contract.DELIVERY_FAILED


def test_a_ticket_epm_had_already_decided_takes_no_new_decision(epm, approve, ticket, client, approver_auth):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=denied_in_epm())
    approve(ticket)
    again = client.post(f"{API}/tickets/{ticket}/decision", headers=approver_auth,
                        json={"decision": "Denied", "reason": "as EPM did"})
    assert again.status_code == 409
    assert again.json["error"]["message"] == contract.MSG_FINAL
    assert len(decision_calls(epm)) == 2  # the approval and the read; nothing more went to EPM


def test_epm_s_decision_read_after_a_409_auto_closes_the_ticket_when_configured(epm, approve, ticket):
    Configuration.update(auto_close=True).execute()
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=denied_in_epm())
    approve(ticket)
    task = Task.get(Task.number == ticket)
    assert task.state == task.ticket_type.closed_state


def test_epm_s_own_update_arriving_after_the_409_changes_nothing_more(epm, approve, ticket, deliver):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=denied_in_epm())
    approve(ticket)
    before = notes(ticket)
    update = factories.application_decision("app-claim", Decision="Denied", DecisionPerformedByUser="epm-admin",
                                            DecisionTime="2026-11-22T05:01:00Z", Duration="")
    assert deliver(update).status_code == 200
    jit = Task.get(Task.number == ticket).jit_request
    assert (jit.final_decision, jit.conflict_decision, notes(ticket)) == ("Denied", None, before)


def test_a_409_whose_record_shows_the_decision_sent_acknowledges_it(epm, approve, ticket):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Approved"))
    response = approve(ticket)
    assert response.status_code == 201
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    assert [text for text in notes(ticket) if "acknowledged" in text]


def test_a_409_whose_record_cannot_be_read_is_retried_like_any_failed_delivery(epm, approve, ticket):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, status=503)
    response = approve(ticket)

    assert response.status_code == 202
    decision = Decision.get()
    assert (decision.status, decision.last_status) == (contract.DELIVERY_PENDING, 503), "the read's answer, latest"
    assert decision.last_error.startswith("EPM's record of request app-claim could not be read")
    assert "(HTTP 503)" in decision.last_error and "EPM had answered the decision" in decision.last_error
    task = Task.get(Task.number == ticket)
    assert not task.jit_request.decision_final
    assert assert_outcome_kept(task)[0] == "Approved - sending to EPM"
    assert [text for text in notes(ticket) if "It will be retried automatically" in text]

    epm.replace("GET", RECORD_URL, json=epm_record("Approved"))
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 1
    assert Decision.get().status == contract.DELIVERY_DELIVERED


def _retry_due():
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 1


def _given_up(ticket, steps):
    """The ticket's decision failed for good after `steps` attempts ending in 409s: the ticket reads "Failed to send"
    (not EPM's decision), is never sent again, and its work note says so; returns that note."""
    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.last_status) == (contract.DELIVERY_FAILED, steps, 409)
    task = Task.get(Task.number == ticket)
    assert assert_outcome_kept(task)[0] == "Failed to send"
    assert not task.jit_request.decision_final
    [given_up] = [text for text in notes(ticket) if text.startswith("Delivery to EPM failed permanently")]
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 0, "a failed send is not retried"
    return given_up


def test_a_409_saying_already_decided_is_acknowledged_once_epm_s_lagging_record_shows_the_decision(epm, approve,
                                                                                                   ticket):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Pending"))
    assert approve(ticket).status_code == 202
    _retry_due()
    assert Decision.get().status == contract.DELIVERY_PENDING
    assert "the record may lag EPM's answer" in Decision.get().last_error

    epm.replace("GET", RECORD_URL, json=epm_record("Approved"))
    _retry_due()
    assert (Decision.get().status, Decision.get().attempts) == (contract.DELIVERY_DELIVERED, 3)


def test_a_409_saying_already_decided_whose_record_stays_pending_is_given_up_after_every_retry(
        app, epm, approve, ticket, client, approver_auth):
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Pending"))
    approve(ticket)
    steps = len(app.extensions["settings"].retry_delays)
    for _ in range(steps - 1):
        assert Decision.get().status == contract.DELIVERY_PENDING
        _retry_due()

    assert delivery.deliver_due() == 0
    assert _given_up(ticket, steps).endswith(f"It still showed the request undecided after {steps} attempts (every "
                                             "step of [epm] retry_schedule): given up. The ticket can be decided "
                                             "again.")
    epm.replace("POST", APPLICATION_URL, json={})
    assert approve(ticket).status_code == 201, "the ticket takes a new decision"


def _outage_as_long_as_the_schedule(app, approve, ticket, epm):
    """EPM answers 503 to every attempt of the retry schedule; returns its number of steps."""
    epm.post(APPLICATION_URL, status=503)
    approve(ticket)
    steps = len(app.extensions["settings"].retry_delays)
    for _ in range(steps - 1):
        _retry_due()
    assert (Decision.get().status, Decision.get().attempts, Decision.get().last_status) == (
        contract.DELIVERY_PENDING, steps, 503)
    return steps


def test_a_lagging_record_after_an_outage_as_long_as_the_schedule_is_given_its_time(app, epm, approve, ticket):
    _outage_as_long_as_the_schedule(app, approve, ticket, epm)
    epm.replace("POST", APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Pending"))

    _retry_due()
    decision = Decision.get()
    assert (decision.status, decision.last_status) == (contract.DELIVERY_PENDING, 409)
    assert "the record may lag EPM's answer" in decision.last_error
    # The record's first retry waits the schedule's first step (5 s, ±20%), not its last (300 s).
    assert decision.next_attempt_at - utcnow() <= timedelta(seconds=app.extensions["settings"].retry_delays[0] * 1.2)

    epm.replace("GET", RECORD_URL, json=epm_record("Approved"))
    _retry_due()
    assert Decision.get().status == contract.DELIVERY_DELIVERED


def test_after_an_outage_a_lagging_record_is_given_up_after_every_step_of_its_own(app, epm, approve, ticket):
    steps = _outage_as_long_as_the_schedule(app, approve, ticket, epm)
    epm.replace("POST", APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Pending"))

    for _ in range(steps):
        assert Decision.get().status == contract.DELIVERY_PENDING
        _retry_due()

    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.last_status) == (contract.DELIVERY_FAILED, 2 * steps, 409)
    assert decision.last_error.endswith(f"It still showed the request undecided after {steps} attempts (every step "
                                        "of [epm] retry_schedule): given up")


@pytest.mark.parametrize("record, still", [
    ({"status": 404}, "EPM does not know request app-claim"),
    ({"json": []}, "EPM does not know request app-claim"),
    ({"json": epm_record("Closed")}, "check the EPM Statuses Meaning Approved and Denied settings"),
    ({"body": "<html>sign in</html>"}, "could not be read"),
])
def test_a_409_whose_record_never_tells_the_decision_is_given_up_after_every_retry(
        app, epm, approve, ticket, record, still):
    failed_for_good = []

    def alerted(decision, **_):  # the delivery-failed alert's signal
        failed_for_good.append(decision)

    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, **record)
    steps = len(app.extensions["settings"].retry_delays)
    with events.decision_delivery_failed.connected_to(alerted):
        approve(ticket)
        for _ in range(steps - 1):
            assert Decision.get().status == contract.DELIVERY_PENDING
            _retry_due()

    decision = Decision.get()
    assert still in decision.last_error
    assert [failed.id for failed in failed_for_good] == [decision.id]
    assert _given_up(ticket, steps).endswith(f"after {steps} attempts (every step of [epm] retry_schedule): given up. "
                                             "The ticket can be decided again.")
    epm.replace("POST", APPLICATION_URL, json={})
    assert approve(ticket).status_code == 201, "the ticket takes a new decision"


def test_epm_s_decision_is_shown_even_when_its_record_holds_a_nul(epm, approve, ticket):
    # No text column stores a NUL (PostgreSQL refuses it): read as the webhook's text is, replaced by U+FFFD.
    epm.post(APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=epm_record("Denied", decisionPerformedByUser="epm\u0000admin"))
    approve(ticket)
    jit = Task.get(Task.number == ticket).jit_request
    assert (jit.decision_final, jit.final_decision, jit.final_decision_by) == (True, "Denied", "epm\ufffdadmin")
    assert Decision.get().status == contract.DELIVERY_FAILED
    [not_applied] = [text for text in notes(ticket) if text.startswith("Not applied in EPM")]
    assert "\x00" not in not_applied


# --- A Table API client syncing by sys_updated_on sees every change a delivery's end makes ---------------

LONG_AGO = datetime(2026, 1, 1, 9, 0, 0)
SYNCED = {"sysparm_fields": "approval,sys_updated_on"}


@pytest.fixture
def reader():
    factories.account("pam360", "reader")
    return basic_auth("pam360", factories.PASSWORD)


def table_record(client, reader, number):
    return client.get("/api/now/table/incident", headers=reader,
                      query_string={"sysparm_query": f"number={number}", **SYNCED}).json["result"]


def changed_since_long_ago(client, reader):
    return client.get("/api/now/table/incident", headers=reader, query_string={
        "sysparm_query": f"sys_updated_on>{LONG_AGO:%Y-%m-%d %H:%M:%S}", "sysparm_fields": "number"}).json["result"]


def test_a_decision_refused_for_good_on_retry_moves_sys_updated_on(client, epm, approve, ticket, reader):
    epm.post(APPLICATION_URL, status=503)
    approve(ticket)
    Task.update(updated_at=LONG_AGO).where(Task.number == ticket).execute()
    assert table_record(client, reader, ticket) == [{"approval": "approved", "sys_updated_on": "2026-01-01 09:00:00"}]

    epm.replace("POST", APPLICATION_URL, status=400, json={"message": "itsmRequestId unknown"})
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    assert delivery.deliver_due() == 1

    assert table_record(client, reader, ticket)[0]["approval"] == "requested"
    assert changed_since_long_ago(client, reader) == [{"number": ticket}]


def test_a_decision_epm_had_already_decided_otherwise_on_retry_moves_sys_updated_on(client, epm, approve, ticket,
                                                                                    reader):
    epm.post(APPLICATION_URL, status=503)
    approve(ticket)
    Task.update(updated_at=LONG_AGO).where(Task.number == ticket).execute()

    epm.replace("POST", APPLICATION_URL, status=409, json=ALREADY_DECIDED)
    epm.get(RECORD_URL, json=denied_in_epm())
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    assert delivery.deliver_due() == 1

    assert table_record(client, reader, ticket)[0]["approval"] == "rejected"
    assert changed_since_long_ago(client, reader) == [{"number": ticket}]


# --- EPM's own final decision settles a decision still waiting in the outbox -----------------------------

def decide_approved(client, approver_auth, number):
    return client.post(f"{API}/tickets/{number}/decision", headers=approver_auth,
                       json={"decision": "Approved", "reason": "ok", "duration_unit": "once"})


def test_a_pending_decision_is_not_sent_after_epm_finalized_the_request(epm, deliver, client, approver_auth):
    number = deliver(factories.application_request("decided-in-epm")).json["result"]["ticket"]
    epm.post(APPLICATION_URL, status=503)
    assert decide_approved(client, approver_auth, number).status_code == 202
    update = deliver(factories.application_decision("decided-in-epm", Decision="Denied",
                                                    DecisionPerformedByUser="epm-admin"))
    assert update.status_code == 200

    decision = Decision.get()
    assert (decision.status, decision.delivered_at) == (contract.DELIVERY_FAILED, None)
    assert "not applied" in decision.last_error and "Denied" in decision.last_error
    [not_applied] = [text for text in notes(number) if text.startswith("Not applied in EPM")]
    assert "The Approved decision by jchen was not applied" in not_applied and "epm-admin" in not_applied
    audit = AuditEntry.get(AuditEntry.action == delivery.AUDIT_NOT_APPLIED)
    assert (audit.detail["decision"], audit.detail["epm_decision"]) == ("Approved", "Denied")
    assert not [text for text in notes(number) if "failed permanently" in text]
    assert assert_outcome_kept(Task.get(Task.number == number))[:2] == ("Denied", "epm-admin")

    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    epm.replace("POST", APPLICATION_URL, status=500)
    assert delivery.deliver_due() == 0
    assert delivery.deliver_due() == 0
    assert len(decision_calls(epm)) == 1, [c.request.body for c in decision_calls(epm)]


def test_a_decision_whose_answer_was_lost_is_not_re_sent_once_epm_s_update_shows_it_applied(
        epm, deliver, client, approver, approver_auth):
    number = deliver(factories.application_request("answer-lost")).json["result"]["ticket"]
    epm.post(APPLICATION_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    assert decide_approved(client, approver_auth, number).status_code == 202
    update = deliver(factories.application_decision("answer-lost", Decision="Approved",
                                                    DecisionPerformedByUser=approver.username))
    assert update.status_code == 200

    epm.replace("POST", APPLICATION_URL, status=500)
    for _ in range(3):
        Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
        delivery.deliver_due()
    decision = Decision.get()
    assert len(decision_calls(epm)) == 1, (decision.status, decision.attempts, len(decision_calls(epm)))
    assert (decision.status, decision.attempts, decision.last_error) == (contract.DELIVERY_DELIVERED, 1, None)
    assert decision.delivered_at is not None
    assert [text for text in notes(number) if "EPM's update shows it applied" in text]
    assert assert_outcome_kept(Task.get(Task.number == number))[:2] == ("Approved", approver.username)


def test_a_decision_under_way_when_epm_s_decision_came_in_is_settled_by_its_next_attempt(
        epm, deliver, client, approver_auth):
    # EPM's update was recorded while the attempt was under way (claimed): the attempt's 503 queued the decision
    # again, and its next attempt finds the request final in EPM and sends nothing.
    number = deliver(factories.application_request("decided-meanwhile")).json["result"]["ticket"]

    def answer(_request):
        deliver(factories.application_decision("decided-meanwhile", Decision="Denied",
                                               DecisionPerformedByUser="epm-admin"))
        return 503, {}, ""

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    assert decide_approved(client, approver_auth, number).status_code == 202
    assert Decision.get().status == contract.DELIVERY_PENDING

    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 1
    decision = Decision.get()
    assert (decision.status, len(decision_calls(epm))) == (contract.DELIVERY_FAILED, 1)
    assert "not applied" in decision.last_error
    assert AuditEntry.select().where(AuditEntry.action == delivery.AUDIT_NOT_APPLIED).count() == 1


def _run_past_the_claim():
    """The attempt under way outlives its claim (a stalled worker): others may now take the decision over."""
    Decision.update(claimed_until=utcnow() - timedelta(seconds=1)).execute()


@pytest.mark.parametrize("late_answer", [503, 400])  # retried, refused for good
def test_a_late_failure_of_an_attempt_past_its_claim_leaves_epm_s_settlement_alone(
        epm, deliver, client, approver, approver_auth, late_answer, caplog):
    number = deliver(factories.application_request("settled-meanwhile")).json["result"]["ticket"]

    def answer(_request):
        _run_past_the_claim()
        deliver(factories.application_decision("settled-meanwhile", Decision="Approved",
                                               DecisionPerformedByUser=approver.username))
        return late_answer, {}, ""

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    assert decide_approved(client, approver_auth, number).status_code == 201
    decision = Decision.get()
    assert (decision.status, decision.last_error) == (contract.DELIVERY_DELIVERED, None)
    assert [record.levelname for record in caplog.records if "settled meanwhile" in record.getMessage()] == ["INFO"]

    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 0
    assert len(decision_calls(epm)) == 1
    assert len([text for text in notes(number) if "EPM's update shows it applied" in text]) == 1
    assert not [text for text in notes(number) if "Delivery to EPM failed" in text]


def test_a_late_failure_of_an_attempt_past_its_claim_leaves_another_attempt_s_delivery_alone(epm, approve, ticket):
    def stalled():
        _run_past_the_claim()  # the first attempt stalls; the outbox takes the decision over and delivers it
        delivery.deliver_due()
        return 503, {}, ""

    answers = iter([stalled, lambda: (200, {}, "{}")])

    def answer(_request):
        return next(answers)()

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    assert approve(ticket).status_code == 201
    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.last_error) == (contract.DELIVERY_DELIVERED, 2, None)

    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    assert delivery.deliver_due() == 0
    assert len(decision_calls(epm)) == 2
    assert len([text for text in notes(ticket) if "acknowledged" in text]) == 1
    assert not [text for text in notes(ticket) if "Delivery to EPM failed" in text]


def test_a_late_success_of_an_attempt_past_its_claim_leaves_a_not_applied_decision_alone(
        epm, deliver, client, approver_auth):
    number = deliver(factories.application_request("denied-meanwhile")).json["result"]["ticket"]

    def answer(_request):
        _run_past_the_claim()
        deliver(factories.application_decision("denied-meanwhile", Decision="Denied",
                                               DecisionPerformedByUser="epm-admin"))
        return 200, {}, "{}"

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    decide_approved(client, approver_auth, number)
    decision = Decision.get()
    assert (decision.status, decision.delivered_at) == (contract.DELIVERY_FAILED, None)
    assert "not applied" in decision.last_error
    assert not [text for text in notes(number) if "acknowledged" in text]
    assert assert_outcome_kept(Task.get(Task.number == number))[:2] == ("Denied", "epm-admin")


def test_a_late_409_of_an_attempt_past_its_claim_leaves_epm_s_settlement_alone(epm, deliver, client, approver_auth):
    number = deliver(factories.application_request("app-claim")).json["result"]["ticket"]

    def answer(_request):
        _run_past_the_claim()
        deliver(factories.application_decision("app-claim", Decision="Denied", DecisionPerformedByUser="epm-admin"))
        return 409, {}, json.dumps(ALREADY_DECIDED)

    epm.add_callback("POST", APPLICATION_URL, callback=answer)
    epm.get(RECORD_URL, json=denied_in_epm())
    decide_approved(client, approver_auth, number)
    assert Decision.get().status == contract.DELIVERY_FAILED
    assert len([text for text in notes(number) if text.startswith("Not applied in EPM")]) == 1
    assert AuditEntry.select().where(AuditEntry.action == delivery.AUDIT_NOT_APPLIED).count() == 1


# --- Any 409 is checked against EPM's record: ASP.NET's bare Conflict() says nothing of why ---------------

BARE_CONFLICT = {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.10", "title": "Conflict", "status": 409,
                 "traceId": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}


def test_a_bare_asp_net_409_after_a_lost_answer_is_checked_against_epm_s_record(epm, deliver, client, approver_auth):
    number = deliver(factories.application_request("bare-409")).json["result"]["ticket"]
    epm.post(APPLICATION_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    assert decide_approved(client, approver_auth, number).status_code == 202
    epm.replace("POST", APPLICATION_URL, status=409, content_type="application/problem+json", json=BARE_CONFLICT)
    epm.get(f"{APPLICATION_RECORDS_URL}/bare-409", json={"id": "bare-409", "requestInfo": {}, "serviceTicket": {},
                                                         "accessDecision": {"status": "Approved"}})
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    delivery.deliver_due()
    decision = Decision.get()
    assert decision.status == contract.DELIVERY_DELIVERED, (decision.status, decision.last_error)
    assert [text for text in notes(number) if "acknowledged" in text]


def test_a_bare_409_while_epm_s_record_shows_the_request_pending_fails_for_good(epm, deliver, client, approver_auth):
    number = deliver(factories.application_request("bare-409")).json["result"]["ticket"]
    epm.post(APPLICATION_URL, status=409, content_type="application/problem+json", json=BARE_CONFLICT)
    epm.get(f"{APPLICATION_RECORDS_URL}/bare-409", json={"id": "bare-409", "requestInfo": {}, "serviceTicket": {},
                                                         "accessDecision": {"status": "Pending"}})
    assert decide_approved(client, approver_auth, number).status_code == 202
    decision = Decision.get()
    assert (decision.status, decision.last_status) == (contract.DELIVERY_FAILED, 409)
    assert "still undecided" in decision.last_error
    assert [text for text in notes(number) if "The ticket can be decided again" in text]
