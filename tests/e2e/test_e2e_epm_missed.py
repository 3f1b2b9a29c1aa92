"""What EPM did while the broker heard nothing, against the strict fake EPM on real processes: requests
decided in EPM's console and found by `jitbroker reconcile`, their late webhooks, an Admin Access
approval revoked in EPM, and deliveries under whatever Content-Type EPM's administrator chose
(contract/epm.md §5.3, §5.5, §5.10)."""
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests

from app import contract
from app.epm.fake import FakeEpmError
from app.models import Decision, IncomingRequest, JIT_MODELS, Task, WorkNote
from tests import factories
from tests.live import ROOT, LiveServer, connected_epm
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

JITBROKER = str(Path(sys.executable).parent / "jitbroker")


@pytest.fixture
def tenant(app, database_url, api_account):
    """A gunicorn broker and a strict fake EPM tenant, each configured with the other's address."""
    with LiveServer(database_url, workers=2) as server:
        with connected_epm(server, auto_finalize=True) as fake:
            yield server, fake


def jitbroker(server, *args):
    """Run the `jitbroker` command against the live server's database; returns what it printed."""
    done = subprocess.run([JITBROKER, *args], cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _finalized_notes(task):
    return WorkNote.select().where(WorkNote.task == task, WorkNote.text.startswith("EPM finalized")).count()


def test_requests_decided_in_epm_without_webhooks_become_tickets_with_their_decisions_once(tenant):
    server, fake = tenant
    expected = {}
    for index in range(20):
        request_id = fake.add_request(contract.KIND_APPLICATION)["RequestId"]
        decision = contract.DECISION_APPROVED if index % 2 == 0 else contract.DECISION_DENIED
        fake.decide(request_id, decision, by="epm-console", notify=False)
        expected[request_id] = (contract.KIND_APPLICATION, decision)
    for index in range(10):
        request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
        decision = contract.DECISION_APPROVED if index % 3 else contract.DECISION_DENIED
        fake.decide(request_id, decision, by="epm-console", duration="1800", notify=False)
        expected[request_id] = (contract.KIND_ADMIN, decision)
    assert fake.webhooks == []

    printed = jitbroker(server, "reconcile")

    assert "30 tickets created" in printed
    assert Task.select().count() == 30
    for request_id, (kind, decision) in expected.items():
        jit = JIT_MODELS[kind].get(JIT_MODELS[kind].request_id == request_id)
        assert (jit.decision_final, jit.final_decision) == (True, decision), request_id
    assert Decision.select().count() == 0  # EPM decided: nothing is sent back

    for request_id in expected:
        fake.send_missed(request_id)

    assert Task.select().count() == 30
    rows = list(IncomingRequest.select())
    assert len(rows) == 60
    # Each created event is a duplicate. Each update names who decided in EPM, which EPM's record did not: it fills
    # that in, and changes nothing else.
    assert Counter((contract.EVENT_TYPES[row.event_type].is_created, row.status) for row in rows) == {
        (True, contract.INCOMING_DUPLICATE): 30, (False, contract.INCOMING_PROCESSED): 30}
    for request_id, (kind, decision) in expected.items():
        jit = JIT_MODELS[kind].get(JIT_MODELS[kind].request_id == request_id)
        assert (jit.final_decision, jit.final_decision_by) == (decision, "epm-console"), request_id
    for task in Task.select():
        assert _finalized_notes(task) == 1, task.number
    for request_id in expected:
        fake.send_missed(request_id)
    assert IncomingRequest.select().where(IncomingRequest.status == contract.INCOMING_PROCESSED).count() == 30, \
        "sent again, nothing is left to fill in"
    assert "0 tickets created, 0 decisions finalized" in jitbroker(server, "reconcile")


def test_an_approval_revoked_in_epm_shows_on_the_ticket_page_and_in_its_history(tenant, as_approver):
    server, fake = tenant
    request_id = fake.fire_admin_request()
    task = Task.get(Task.request_id == request_id)
    factories.account("alice", "user")
    answer = requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{task.number}/decision",
                           auth=("alice", factories.PASSWORD), timeout=30,
                           json={"decision": "Approved", "reason": "maintenance window",
                                 "duration_unit": "minutes", "duration_value": 30})
    assert answer.status_code == 201, answer.text
    wait_until(lambda: JIT_MODELS[contract.KIND_ADMIN].get(request_id=request_id).decision_final,
               message="EPM's approval to reach the ticket")

    fake.revoke(request_id, by="secops-lead")

    wait_until(lambda: JIT_MODELS[contract.KIND_ADMIN].get(request_id=request_id).final_decision
               == contract.DECISION_DENIED, message="the revocation to reach the ticket")
    page = as_approver.get(f"/tickets/{task.number}").get_data(as_text=True)
    assert "Revoked" in page
    assert "secops-lead" in page
    history = [note.text for note in WorkNote.select().where(WorkNote.task == task).order_by(WorkNote.id)]
    assert any("Approved" in text for text in history if text.startswith("EPM finalized"))
    assert any("secops-lead" in text for text in history)
    assert Decision.select().count() == 1  # the approver's; the revocation sends nothing to EPM


@pytest.mark.parametrize("content_type", ["text/plain", ""])
def test_a_delivery_under_the_content_type_epm_s_administrator_chose_becomes_a_ticket(tenant, content_type):
    server, fake = tenant
    event = fake.add_request(contract.KIND_ADMIN)

    fake.send_event(event, content_type=content_type)

    [row] = IncomingRequest.select()
    assert (row.status, row.content_type) == (contract.INCOMING_PROCESSED, content_type or None)
    assert Task.get(Task.request_id == event["RequestId"]).requester == event["UserName"]


@pytest.mark.parametrize("body", [b"[1,2]", b"not json"])
def test_a_body_that_is_not_a_json_object_is_refused_and_stored_as_an_error(tenant, body):
    server, fake = tenant
    with pytest.raises(FakeEpmError, match="HTTP 400"):
        fake.send_event(body, content_type="application/json")

    [row] = IncomingRequest.select()
    assert row.status == contract.INCOMING_ERROR
    assert bytes(row.raw_body) == body
    assert Task.select().count() == 0
