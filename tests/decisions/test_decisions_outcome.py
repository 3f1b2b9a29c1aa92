"""How each request ended, kept on its ticket through a decision's life (app/tickets/outcome.py): taken, sent,
retried, refused, delivered, and decided again; EPM's own final word is never written over by a delivery."""
from datetime import timedelta

import pytest

from app import contract
from app.decisions import delivery, service as decisions
from app.models import Decision, Task, utcnow
from tests import factories
from tests.decisions.conftest import APPLICATION_URL
from tests.outcomes import assert_outcome_kept


@pytest.fixture
def task(make_ticket):
    return make_ticket(factories.application_request("req-decided"))


def decide(task, account, decision=contract.DECISION_APPROVED, send_now=True):
    return decisions.decide(Task.get_by_id(task.id), account, decision, "ok", "once", ticket_url="https://broker/t",
                            send_now=send_now)


def make_due():
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()


def test_a_decision_taken_reads_as_being_sent_until_epm_answers(epm, task, approver):
    taken = decide(task, approver, send_now=False)
    assert assert_outcome_kept(task) == ("Approved - sending to EPM", approver.username, taken.decided_at)


def test_a_delivered_decision_is_kept_as_the_decision(epm, task, approver):
    epm.post(APPLICATION_URL, json={})
    taken = decide(task, approver)
    assert taken.status == contract.DELIVERY_DELIVERED
    assert assert_outcome_kept(task) == ("Approved", approver.username, taken.decided_at)


def test_a_retried_delivery_reads_as_being_sent_until_it_is_delivered(epm, task, approver):
    epm.post(APPLICATION_URL, status=503)
    taken = decide(task, approver)
    assert taken.status == contract.DELIVERY_PENDING
    assert assert_outcome_kept(task)[0] == "Approved - sending to EPM"
    epm.replace("POST", APPLICATION_URL, json={})
    make_due()
    assert delivery.deliver_due() == 1
    assert assert_outcome_kept(task)[0] == "Approved"


def test_a_refused_decision_reads_failed_to_send_until_the_ticket_is_decided_again(epm, task, approver):
    epm.post(APPLICATION_URL, status=400, json={"message": "itsmRequestId unknown"})
    refused = decide(task, approver, contract.DECISION_DENIED)
    assert refused.status == contract.DELIVERY_FAILED
    assert assert_outcome_kept(task) == (contract.OUTCOME_FAILED_TO_SEND, approver.username, refused.decided_at)
    epm.replace("POST", APPLICATION_URL, json={})
    again = decide(task, approver, contract.DECISION_DENIED)
    assert assert_outcome_kept(task) == (contract.DECISION_DENIED, approver.username, again.decided_at)


def epm_decides_during_the_attempt(epm, deliver, **answer):
    """EPM's final decision comes in while the attempt waits for EPM's answer, which is then `answer`."""
    def decided_meanwhile(_request):
        assert deliver(factories.application_decision("req-decided", DecisionPerformedByUser="epm-admin")
                       ).status_code == 200
        return answer.get("status", 200), {}, answer.get("body", "{}")
    epm.add_callback("POST", APPLICATION_URL, callback=decided_meanwhile)


def test_a_decision_waiting_when_epm_s_final_word_comes_in_is_settled_by_it(epm, task, approver, deliver):
    decide(task, approver, send_now=False)
    answer = deliver(factories.application_decision("req-decided", DecisionPerformedByUser="epm-admin"))
    assert answer.status_code == 200
    make_due()
    assert delivery.deliver_due() == 0
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    assert assert_outcome_kept(task)[:2] == ("Approved", "epm-admin")


def test_epm_s_final_word_stays_when_a_delivery_is_recorded_after_it(epm, task, approver, deliver):
    decide(task, approver, send_now=False)
    epm_decides_during_the_attempt(epm, deliver)
    make_due()
    assert delivery.deliver_due() == 1
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    assert assert_outcome_kept(task)[:2] == ("Approved", "epm-admin")


def test_epm_s_final_word_stays_when_a_delivery_is_refused_after_it(epm, task, approver, deliver):
    decide(task, approver, send_now=False)
    epm_decides_during_the_attempt(epm, deliver, status=400, body='{"message": "itsmRequestId unknown"}')
    make_due()
    assert delivery.deliver_due() == 1
    assert Decision.get().status == contract.DELIVERY_FAILED
    assert assert_outcome_kept(task)[:2] == ("Approved", "epm-admin")
