"""How each request ended, kept on its ticket by every update EPM sends (app/tickets/outcome.py): after each,
the ticket keeps what its JIT record and its decisions say."""
from datetime import datetime, timedelta

import pytest

from app import contract
from app.configuration import update_configuration
from app.db import write_transaction
from app.jobs import expiry
from app.models import Decision, Task, utcnow
from app.tickets import outcome, service as tickets
from tests import factories
from tests.outcomes import assert_outcome_kept, kept_outcome

APPROVED_AT = datetime(2026, 11, 20, 14, 20, 44, 912000)  # urm_decision_update's DecisionTime
ADMIN_APPROVED_AT = datetime(2026, 11, 20, 15, 12, 2)     # admin_ticket_updated's
REVOKED_AT = datetime(2026, 11, 20, 15, 20, 40)           # admin_ticket_revoked's


def test_a_new_ticket_awaits_a_decision(make_ticket):
    task = make_ticket()
    assert assert_outcome_kept(task) == (contract.OUTCOME_AWAITING, "", None)


@pytest.mark.parametrize("auto_close", [False, True])
def test_epm_s_first_final_decision_is_kept(make_ticket, deliver, auto_close):
    if auto_close:
        update_configuration({"auto_close": "true"})
    task = make_ticket(factories.application_request("req-final"))
    assert deliver(factories.application_decision("req-final")).status_code == 200
    assert assert_outcome_kept(task) == ("Approved", "jchen", APPROVED_AT)
    assert (Task.get_by_id(task.id).closed_at is not None) == auto_close


def test_an_update_before_its_created_event_is_kept_once_the_ticket_exists(deliver):
    deliver(factories.application_decision("req-early"))
    deliver(factories.application_request("req-early"))
    assert assert_outcome_kept(Task.get(Task.request_id == "req-early")) == ("Approved", "jchen", APPROVED_AT)


def test_a_revoked_approval_is_kept_as_revoked_and_an_older_update_changes_nothing(make_ticket, deliver):
    task = make_ticket(factories.admin_request("req-revoked"))
    deliver(factories.admin_decision("req-revoked"))
    assert assert_outcome_kept(task) == ("Approved", "jchen", ADMIN_APPROVED_AT)
    deliver(factories.admin_revocation("req-revoked"))
    assert assert_outcome_kept(task) == (contract.EPM_OUTCOME_REVOKED, "secops-lead", REVOKED_AT)
    deliver(factories.admin_decision("req-revoked", Timestamp="2026-11-20T15:30:00Z"))  # the approval again
    assert assert_outcome_kept(task) == (contract.EPM_OUTCOME_REVOKED, "secops-lead", REVOKED_AT)


def test_a_session_ended_early_is_kept_as_ended_early(make_ticket, deliver):
    task = make_ticket(factories.admin_request("req-ended"))
    deliver(factories.admin_decision("req-ended"))
    deliver(factories.admin_decision("req-ended", EndTime="2026-11-20T15:30:00Z",
                                     DecisionPerformedByUser="secops-lead"))
    assert assert_outcome_kept(task) == (contract.EPM_OUTCOME_ENDED_EARLY, "secops-lead", ADMIN_APPROVED_AT)


def test_an_application_decision_epm_changed_is_kept_as_changed(make_ticket, deliver):
    task = make_ticket(factories.application_request("req-changed"))
    deliver(factories.application_decision("req-changed"))
    deliver(factories.application_decision("req-changed", Decision="Denied", DecisionPerformedByUser="mlopez",
                                           DecisionTime="2026-11-21T09:00:00Z"))
    assert assert_outcome_kept(task) == (contract.EPM_OUTCOME_CHANGED, "mlopez", datetime(2026, 11, 21, 9))


def acknowledged(task, decision, by="approver1"):
    """A decision of the broker's on `task` that EPM acknowledged, kept as its delivery keeps it."""
    with write_transaction():
        Decision.create(task=task, decision=decision, reason="ok", decided_by=by, ticket_url="https://broker/t",
                        status=contract.DELIVERY_DELIVERED, delivered_at=utcnow())
        outcome.refresh(task)
    assert assert_outcome_kept(task) == (decision, by, Decision.get(Decision.task == task).decided_at)


def test_an_approval_contradicting_the_acknowledged_denial_keeps_the_denial(make_ticket, deliver):
    task = make_ticket(factories.application_request("req-conflict"))
    acknowledged(task, contract.DECISION_DENIED)
    deliver(factories.application_decision("req-conflict"))
    assert assert_outcome_kept(task) == (contract.DECISION_DENIED, "approver1", None)


def test_a_denial_after_the_acknowledged_admin_approval_is_kept_as_revoked(make_ticket, deliver):
    task = make_ticket(factories.admin_request("req-first-revoked"))
    acknowledged(task, contract.DECISION_APPROVED)
    deliver(factories.admin_revocation("req-first-revoked"))
    assert assert_outcome_kept(task) == (contract.EPM_OUTCOME_REVOKED, "secops-lead", REVOKED_AT)


def decision(task, status, minutes_ago):
    return Decision.create(task=task, decision="Approved", reason="ok", decided_by=f"approver-{minutes_ago}",
                           ticket_url="https://broker/t", status=status,
                           decided_at=utcnow() - timedelta(minutes=minutes_ago))


SENDING_WORDS = "Approved - sending to EPM"


@pytest.mark.parametrize("statuses, words", [
    ((), contract.OUTCOME_AWAITING),
    ((contract.DELIVERY_PENDING,), SENDING_WORDS),
    ((contract.DELIVERY_SENDING,), SENDING_WORDS),
    ((contract.DELIVERY_DELIVERED,), "Approved"),
    ((contract.DELIVERY_FAILED,), contract.OUTCOME_FAILED_TO_SEND),
    ((contract.DELIVERY_FAILED, contract.DELIVERY_PENDING), SENDING_WORDS),
    ((contract.DELIVERY_DELIVERED, contract.DELIVERY_FAILED), contract.OUTCOME_FAILED_TO_SEND)])
def test_an_update_without_a_decision_keeps_what_the_latest_broker_decision_says(make_ticket, statuses, words):
    """EPM's update names no decision: the ticket still awaits EPM's, and the broker's latest decision speaks."""
    task = make_ticket(factories.application_request("req-silent"))
    for minutes_ago, status in zip(range(len(statuses), 0, -1), statuses):
        decision(task, status, minutes_ago)
    with write_transaction():
        jit = tickets.find_jit_request(contract.KIND_APPLICATION, "req-silent")
        tickets.record_update(jit, contract.URM_DECISION_UPDATE, {"request_id": "req-silent", "request_info": {}})
    assert not tickets.find_jit_request(contract.KIND_APPLICATION, "req-silent").decision_final
    assert assert_outcome_kept(task)[:2] == ((words, "approver-1") if statuses else (words, ""))


def silent_update(request_id):
    """EPM's Application Access update naming no decision, applied."""
    with write_transaction():
        jit = tickets.find_jit_request(contract.KIND_APPLICATION, request_id)
        tickets.record_update(jit, contract.URM_DECISION_UPDATE, {"request_id": request_id, "request_info": {}})


def test_an_expired_request_is_kept_as_expired_through_an_update_naming_no_decision(make_ticket):
    task = make_ticket(factories.application_request("req-expired"), age=timedelta(hours=30))
    assert expiry.expire_pending() == 1
    expired_at = Task.get_by_id(task.id).expired_at
    assert assert_outcome_kept(task) == (contract.OUTCOME_EXPIRED, "", expired_at)
    silent_update("req-expired")
    assert assert_outcome_kept(task) == (contract.OUTCOME_EXPIRED, "", expired_at)
    with write_transaction():
        assert outcome.refresh(Task.get_by_id(task.id)) == (contract.OUTCOME_EXPIRED, "", expired_at)
    assert assert_outcome_kept(task) == (contract.OUTCOME_EXPIRED, "", expired_at)


def test_epm_s_final_decision_after_the_expiry_wins(make_ticket, deliver):
    task = make_ticket(factories.application_request("req-late"), age=timedelta(hours=30))
    assert expiry.expire_pending() == 1
    deliver(factories.application_decision("req-late"))
    assert assert_outcome_kept(task) == ("Approved", "jchen", APPROVED_AT)


def test_a_request_whose_decision_epm_refused_reads_expired_once_it_expired(make_ticket):
    # EPM's refusal left the request to be decided again; nobody did in time, and EPM no longer waits for one.
    task = make_ticket(factories.application_request("req-refused"), age=timedelta(hours=30))
    with write_transaction():
        decision(task, contract.DELIVERY_FAILED, 60)
        outcome.refresh(task)
    assert assert_outcome_kept(task)[:2] == (contract.OUTCOME_FAILED_TO_SEND, "approver-60")
    assert expiry.expire_pending() == 1
    expired_at = Task.get_by_id(task.id).expired_at
    assert assert_outcome_kept(task) == (contract.OUTCOME_EXPIRED, "", expired_at)
    silent_update("req-refused")  # the outcome worked out by the task's UPDATE itself
    assert assert_outcome_kept(task) == (contract.OUTCOME_EXPIRED, "", expired_at)
    with write_transaction():
        assert outcome.refresh(Task.get_by_id(task.id)) == (contract.OUTCOME_EXPIRED, "", expired_at)


def test_a_kept_outcome_can_disagree_with_a_change_made_behind_its_back(make_ticket):
    """The check itself: a decision written without keeping the outcome is caught."""
    task = make_ticket()
    decision(task, contract.DELIVERY_DELIVERED, 1)
    assert kept_outcome(task)[0] == contract.OUTCOME_AWAITING
    with pytest.raises(AssertionError):
        assert_outcome_kept(task)
