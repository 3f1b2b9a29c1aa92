"""The whole loop on real processes: EPM (the fake) → gunicorn → approvers → EPM → update → ticket."""
import threading

import pytest
import requests

from app import contract
from app.decisions import delivery
from app.models import Decision, Task
from tests import factories
from tests.live import LiveServer, connected_epm
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


EPM_TIMEOUT_SECONDS = 1


@pytest.fixture
def loop(app, database_url, api_account, tmp_path):
    """A gunicorn broker and a fake EPM that knows it, configured to talk to each other."""
    factories.account("alice", "user")
    factories.account("bob", "user")
    config = tmp_path / "broker.toml"
    config.write_text(f"[epm]\ntimeout_seconds = {EPM_TIMEOUT_SECONDS}\n")
    with LiveServer(database_url, workers=2, env={"JITBROKER_CONFIG": str(config)}) as server:
        with connected_epm(server, auto_finalize=True) as fake:
            yield server, fake


def _decision_url(server, number):
    return f"{server.url}/api/x_bets_pmc_jit/tickets/{number}/decision"


def test_two_approvers_at_once_one_wins_and_epm_gets_one_call(loop):
    server, fake = loop
    request_id = fake.fire_application_request()
    number = Task.get(Task.request_id == request_id).number
    barrier = threading.Barrier(2)
    answers = {}

    def approve(user, decision):
        barrier.wait()
        response = requests.post(_decision_url(server, number), auth=(user, factories.PASSWORD), timeout=30,
                                 json={"decision": decision, "reason": f"{user} decided", "duration_unit": "hours",
                                       "duration_value": 2})
        answers[user] = response

    threads = [threading.Thread(target=approve, args=args) for args in (("alice", "Approved"), ("bob", "Denied"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(response.status_code for response in answers.values())
    assert statuses == [201, 409]
    loser = next(response for response in answers.values() if response.status_code == 409)
    assert loser.json()["error"]["message"] in (contract.MSG_FINAL, contract.MSG_DECISION_IN_FLIGHT)
    assert fake.applied_count == 1
    assert fake.received_count == 1
    assert fake.wait_for_finalizations()
    wait_until(lambda: Task.get(Task.number == number).jit_request.decision_final,
               message="the ticket to show EPM's final decision")
    jit = Task.get(Task.number == number).jit_request
    winner = next(user for user, response in answers.items() if response.status_code == 201)
    assert jit.final_decision_by == winner


def test_decisions_made_during_an_outage_are_delivered_once_after_it(loop):
    server, fake = loop
    numbers = [Task.get(Task.request_id == fake.fire_admin_request()).number for _ in range(3)]
    fake.fail_next(len(numbers), 503)
    for number in numbers:
        response = requests.post(_decision_url(server, number), auth=("alice", factories.PASSWORD), timeout=30,
                                 json={"decision": "Approved", "reason": "outage test", "duration_unit": "once"})
        assert response.status_code == 202
        assert response.json()["result"]["decision"]["delivery_status"] == contract.DELIVERY_PENDING
    assert fake.applied_count == 0
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    assert delivery.deliver_due() == 3
    assert delivery.deliver_due() == 0
    assert fake.applied_count == 3
    assert {d.status for d in Decision.select()} == {contract.DELIVERY_DELIVERED}
    assert fake.wait_for_finalizations()
    wait_until(lambda: all(Task.get(Task.number == n).jit_request.decision_final for n in numbers),
               message="every ticket to show EPM's final decision")


def test_an_acknowledgement_after_the_time_out_is_not_applied_twice(loop):
    server, fake = loop
    number = Task.get(Task.request_id == fake.fire_application_request()).number
    fake.delay_next(EPM_TIMEOUT_SECONDS + 2)
    response = requests.post(_decision_url(server, number), auth=("alice", factories.PASSWORD), timeout=60,
                             json={"decision": "Denied", "reason": "slow EPM"})
    assert response.status_code == 202
    assert "did not answer" in response.json()["result"]["decision"]["last_error"]
    wait_until(lambda: fake.applied_count == 1, message="EPM to apply one decision")
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    assert delivery.deliver_due() == 1
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    assert fake.received_count == 2
    assert fake.applied_count == 1


def test_an_approval_of_a_request_denied_in_epm_s_console_shows_epm_s_denial_not_the_approval(loop):
    server, fake = loop
    request_id = fake.fire_application_request()
    number = Task.get(Task.request_id == request_id).number
    fake.decide(request_id, contract.DECISION_DENIED, by="epm-admin")  # its update webhook is not sent yet

    response = requests.post(_decision_url(server, number), auth=("alice", factories.PASSWORD), timeout=30,
                             json={"decision": "Approved", "reason": "needed today", "duration_unit": "once"})

    assert response.status_code == 202
    assert response.json()["result"]["decision"]["delivery_status"] == contract.DELIVERY_FAILED
    assert ([call.status for call in fake.calls], fake.applied_count) == ([409], 0)
    ticket = requests.get(f"{server.url}/api/x_bets_pmc_jit/tickets/{number}", auth=("alice", factories.PASSWORD),
                          timeout=30).json()["result"]
    assert (ticket["epm_decision"]["decision"], ticket["epm_decision"]["final"]) == ("Denied", True)
    assert [note["text"] for note in ticket["work_notes"] if note["text"].startswith("Not applied in EPM")]
    assert Task.get(Task.number == number).outcome == contract.DECISION_DENIED

    fake.send_missed(request_id)  # EPM's own webhooks, late: they change nothing more
    jit = Task.get(Task.number == number).jit_request
    assert (jit.final_decision, jit.conflict_decision) == ("Denied", None)
