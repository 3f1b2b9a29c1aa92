"""When policies run: after the webhook's answer is sent, or by the scheduler's job for anything left queued."""
import json

from app.jobs.registry import JOBS, run_job
from app.models import Task
from app.policies.models import PolicyEvaluation
from tests.policies.conftest import WEBHOOK, application, epm_decisions


def deliver_without_closing(client, api_auth, body):
    return client.post(WEBHOOK, data=json.dumps(body), content_type="application/json", headers=api_auth)


def test_the_webhook_is_answered_before_any_policy_runs(http, client, api_auth, add_rule):
    add_rule(name="Deny all", outcome="auto_deny")

    answer = deliver_without_closing(client, api_auth, application("please"))

    task = Task.get(Task.number == answer.json["result"]["ticket"])
    assert answer.status_code == 200 and answer.json["result"]["status"] == "processed"
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "pending"
    assert epm_decisions(http) == []

    answer.close()  # the server has sent the answer: now the policy runs

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "done"


def test_the_scheduler_job_runs_evaluations_left_queued(http, client, api_auth, add_rule):
    add_rule(name="Deny all", outcome="auto_deny")
    deliver_without_closing(client, api_auth, application("please"))  # as if the worker stopped after answering

    outcome = run_job(JOBS["evaluate_policies"])

    assert outcome.result == 1
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]


def test_nothing_is_queued_while_no_rule_is_enabled(http, client, api_auth, add_rule):
    add_rule(name="Off", outcome="auto_deny", enabled="false")

    deliver_without_closing(client, api_auth, application("please")).close()

    assert PolicyEvaluation.select().count() == 0


class ListingClient:
    """Stands in for EpmClient's request lists during reconciliation: one page of application requests."""

    def __init__(self, records):
        self.records = records

    def list_requests(self, kind, page_size, page_number):
        data = self.records if kind == "application" and page_number == 1 else []
        return {"data": data, "pageCount": 1, "totalRecordCount": len(data)}


def test_a_request_recovered_by_reconciliation_meets_the_policies(http, add_rule, app, monkeypatch):
    import dataclasses
    import uuid

    monkeypatch.setitem(app.extensions, "settings",
                        dataclasses.replace(app.extensions["settings"], public_url="https://jit.example.com"))

    from app.jobs.reconcile import reconcile

    add_rule(name="Deny all", outcome="auto_deny")
    request_id = str(uuid.uuid4())
    reconcile(ListingClient([{"id": request_id, "accessDecision": {"status": "Pending"},
                              "requestInfo": {"user": "CORP\\kpatel", "reason": "lost webhook"}}]))

    run_job(JOBS["evaluate_policies"])

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied"
    assert body["ticketUrl"] == "https://jit.example.com/tickets/INC0010001"  # server.public_url
    assert Task.get(Task.request_id == request_id).decisions.get().decided_by == "policy-engine"


def test_a_request_epm_decided_before_its_policies_ran_is_left_as_epm_decided(http, add_rule, app):
    import uuid

    from app.jobs.reconcile import reconcile

    add_rule(name="Deny all", outcome="auto_deny")
    request_id = str(uuid.uuid4())
    reconcile(ListingClient([{"id": request_id,
                              "accessDecision": {"status": "Approved", "decisionTime": "2026-12-01T10:00:00Z"},
                              "requestInfo": {"user": "CORP\\kpatel", "reason": "lost webhook"}}]))

    run_job(JOBS["evaluate_policies"])

    task = Task.get(Task.request_id == request_id)
    assert task.jit_request.decision_final
    assert epm_decisions(http) == [], "no rule decides what EPM already decided"
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).outcome == "EPM had decided the request; no rule ran."


def test_a_ticket_created_by_replaying_a_stored_delivery_meets_the_policies(http, add_rule, client, api_auth,
                                                                            admin, monkeypatch):
    from app import contract
    from app.models import IncomingRequest
    from app.ops import replay
    from tests import factories

    add_rule(name="Deny all", outcome="auto_deny")
    body = factories.admin_request()
    with monkeypatch.context() as unknown:  # stored as an error while the broker did not know the event
        unknown.delitem(contract.EVENT_TYPES, contract.ADMIN_TICKET_CREATED.name)
        assert deliver_without_closing(client, api_auth, body).status_code == 400
    stored = IncomingRequest.get(IncomingRequest.request_id == body["RequestId"])

    replay.replay(stored, admin)
    run_job(JOBS["evaluate_policies"])

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]


def test_an_evaluation_that_keeps_failing_leaves_the_request_to_one_approver(http, submit, add_rule, client,
                                                                             approver_auth, monkeypatch):
    from app.policies import engine
    from app.policies.queue import MAX_ATTEMPTS, run_evaluation

    add_rule(name="Two", outcome="two_approvers")
    monkeypatch.setattr(engine, "judge", lambda *args: 1 / 0)
    task = submit(application("please"))  # its first attempt fails; it will be retried

    def approve():
        return client.post(f"/api/x_bets_pmc_jit/tickets/{task.number}/decision", headers=approver_auth,
                           json={"decision": "Approved", "reason": "Fine", "duration_unit": "once"})

    while_retried = approve()
    for _attempt in range(MAX_ATTEMPTS - 1):
        run_evaluation(PolicyEvaluation.get(PolicyEvaluation.task == task).id)
    given_up = approve()

    assert while_retried.status_code == 409
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "error"
    assert given_up.status_code == 201
    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
