"""When policies run: after the webhook's answer is sent, or by the scheduler's job for anything left queued."""
import json

from app.jobs.registry import JOBS, run_job
from app.models import Task
from app.policies.models import PolicyEvaluation
from tests.policies.conftest import WEBHOOK, application, epm_decisions, notes


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


def test_a_rule_s_decision_that_fails_unexpectedly_on_its_way_to_epm_stays_the_evaluation_s_outcome(
        http, submit, add_rule, monkeypatch):
    from app.decisions import delivery

    add_rule(name="Deny all", outcome="auto_deny")
    monkeypatch.setattr(delivery, "_send", lambda *args: 1 / 0)  # after the decision was stored
    task = submit(application("please"))
    monkeypatch.undo()
    run_job(JOBS["evaluate_policies"])

    evaluation = PolicyEvaluation.get(PolicyEvaluation.task == task)
    assert (evaluation.status, evaluation.outcome) == ("done", "denied by Rule 1 'Deny all'")
    assert task.decisions.count() == 1
    assert not [note for note in notes(task) if note.startswith(("Policy evaluation failed", "No policy rule ran"))]


# A ticket whose rules were skipped because it could not take a decision meets them when it can take one again.

APPROVAL = {"decision": "Approved", "reason": "Looks fine", "duration_unit": "once"}


def _as_user(username):
    from tests import factories
    from tests.conftest import basic_auth

    factories.account(username, "user")
    return basic_auth(username, factories.PASSWORD)


def _approve(client, task, auth):
    return client.post(f"/api/x_bets_pmc_jit/tickets/{task.number}/decision", json=APPROVAL, headers=auth)


def _set_state(client, auth, task, state):
    """Move the ticket to `state` through the API and let the answer close (anything it queued then runs)."""
    answer = client.patch(f"/api/x_bets_pmc_jit/tickets/{task.number}", json={"state": state}, headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    answer.close()


def _skipped_while_resolved(client, api_auth, auth, body):
    """Deliver `body`; a person resolves the ticket before its queued rules run, so they are skipped."""
    delivery = deliver_without_closing(client, api_auth, body)
    task = Task.get(Task.number == delivery.json["result"]["ticket"])
    _set_state(client, auth, task, "Resolved")
    delivery.close()  # the queued evaluation runs now, on a ticket that takes no decision
    return task


def test_a_ticket_reopened_after_its_rules_were_skipped_requires_two_approvers(http, client, api_auth, add_rule,
                                                                               approver_auth):
    add_rule(name="Two for installers", outcome="two_approvers")
    task = _skipped_while_resolved(client, api_auth, approver_auth, application("please"))
    skipped = notes(task)[-1]

    _set_state(client, approver_auth, task, "In Progress")
    first = _approve(client, task, _as_user("akim"))

    assert first.status_code == 202, first.get_data(as_text=True)
    assert epm_decisions(http) == [] and task.decisions.count() == 0
    assert skipped.endswith("the rules run when it can take one again."), skipped
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).outcome == \
        "two approvers required by Rule 1 'Two for installers'"


def test_a_ticket_reopened_on_its_page_meets_a_require_ticket_rule(http, client, api_auth, add_rule, approver_auth,
                                                                   as_approver):
    add_rule(name="Ticket required", outcome="require_ticket")
    task = _skipped_while_resolved(client, api_auth, approver_auth, application("no reference"))

    reopened = as_approver.post(f"/tickets/{task.number}/state", {"state": "In Progress"})
    reopened.close()

    assert reopened.status_code == 302
    [body] = epm_decisions(http)
    assert body["decision"] == "Denied" and body["decisionPerformedByUser"] == "policy-engine"


def test_an_approval_while_the_skipped_ticket_is_resolved_is_refused_as_inactive(http, client, api_auth, add_rule,
                                                                                 approver_auth):
    from app import contract
    from app.chat.status import policy_result

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _skipped_while_resolved(client, api_auth, approver_auth, application("please"))

    refused = _approve(client, task, approver_auth)

    assert refused.status_code == 409
    assert refused.json["error"]["message"] == contract.MSG_INACTIVE
    assert policy_result(task).startswith("The request cannot take a decision now (")  # what Slack and Teams show


def test_a_ticket_made_active_by_the_configuration_meets_its_rules_in_the_job(http, client, api_auth, add_rule,
                                                                              approver_auth):
    from app.configuration import update_configuration
    from app.decisions.approvals import MSG_EVALUATING

    add_rule(name="Deny when invalid", outcome="auto_approve", ticket_source="broker", deny_on_failure="true")
    task = _skipped_while_resolved(client, api_auth, approver_auth, application("no reference"))

    update_configuration({"active_states": "New, In Progress, On Hold, Resolved"})
    before_the_job = _approve(client, task, approver_auth)
    run_job(JOBS["evaluate_policies"])

    assert before_the_job.status_code == 409 and before_the_job.json["error"]["message"] == MSG_EVALUATING
    [body] = epm_decisions(http)
    assert body["decision"] == "Denied" and body["decisionPerformedByUser"] == "policy-engine"


def test_rules_skipped_for_a_decision_on_its_way_run_when_epm_refuses_it(http, client, api_auth, add_rule,
                                                                         approver_auth):
    from app.decisions import service as decisions
    from tests.policies.conftest import APPLICATION_URL

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)

    http.replace("POST", APPLICATION_URL, status=400, json={"message": "Unknown request"})
    decisions.retry_now(task.decisions.get())  # EPM refuses the denial for good: the ticket takes a decision again
    requeued = PolicyEvaluation.get(PolicyEvaluation.task == task).status
    run_job(JOBS["evaluate_policies"])
    first = _approve(client, task, _as_user("akim"))

    assert first.status_code == 202, first.get_data(as_text=True)
    assert requeued == "pending"
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied", "Denied"]


def test_upgrading_makes_an_evaluation_skipped_while_the_ticket_was_resolved_wait(http, client, api_auth, add_rule,
                                                                                  approver_auth, submit):
    from app import contract
    from app.migrations import MIGRATIONS, _waiting_policy_evaluations, upgrade
    from app.models import SchemaVersion, utcnow

    add_rule(name="Two for installers", outcome="two_approvers")
    evaluated = submit(application("evaluated"))
    task = _skipped_while_resolved(client, api_auth, approver_auth, application("please"))
    # As an earlier version left it: done, one approver enough.
    PolicyEvaluation.update(status="done", finished_at=utcnow(), outcome=(
        f"The request could no longer take a decision ({contract.MSG_INACTIVE}); no rule ran.")).where(
        PolicyEvaluation.task == task).execute()
    Task.update(approvals_required=1).where(Task.id == task.id).execute()
    [(version, description)] = [(number, text) for number, text, step in MIGRATIONS
                                if step is _waiting_policy_evaluations]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]
    _set_state(client, approver_auth, task, "In Progress")
    first = _approve(client, task, _as_user("akim"))

    assert first.status_code == 202, first.get_data(as_text=True)
    assert epm_decisions(http) == []
    assert PolicyEvaluation.get(PolicyEvaluation.task == evaluated).status == "done"
    assert Task.get_by_id(evaluated.id).approvals_required == 2


# An evaluation waiting on a decision on its way to EPM ends when that decision settles the request.

def _waiting_on_a_denial(http, client, api_auth, approver_auth):
    """A ticket denied while EPM is busy before its queued rules ran: they wait for the denial to settle."""
    from tests.policies.conftest import APPLICATION_URL

    delivery = deliver_without_closing(client, api_auth, application("please"))
    task = Task.get(Task.number == delivery.json["result"]["ticket"])
    http.replace("POST", APPLICATION_URL, status=503)  # EPM busy: the denial waits in the outbox
    denied = client.post(f"/api/x_bets_pmc_jit/tickets/{task.number}/decision", headers=approver_auth,
                         json={"decision": "Denied", "reason": "Not now"})
    assert denied.status_code == 202, denied.get_data(as_text=True)
    delivery.close()  # the rules are skipped: a decision is on its way to EPM
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "waiting"
    return task


def _ended_with_no_rule_run(task, outcome):
    """`task`'s evaluation is done with `outcome`, no rule run: Slack and Teams show that outcome (no longer "cannot
    take a decision now"), and one approver is enough."""
    from app.chat.status import policy_result

    evaluation = PolicyEvaluation.get(PolicyEvaluation.task == task)
    assert (evaluation.status, evaluation.outcome) == ("done", outcome)
    assert evaluation.finished_at is not None and policy_result(task) == outcome
    assert Task.get_by_id(task.id).approvals_required == 1


def test_rules_waiting_on_a_decision_end_once_epm_acknowledges_it(http, client, api_auth, add_rule, approver_auth):
    from app import contract
    from app.decisions import service as decisions
    from tests.policies.conftest import APPLICATION_URL

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)

    http.replace("POST", APPLICATION_URL, json={})
    assert decisions.retry_now(task.decisions.get()).status == contract.DELIVERY_DELIVERED
    run_job(JOBS["evaluate_policies"])

    _ended_with_no_rule_run(task, f"The request could no longer take a decision ({contract.MSG_FINAL}); no rule ran.")
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied", "Denied"]  # no rule decided anything


def test_rules_waiting_on_a_decision_end_when_a_person_closes_the_acknowledged_ticket(
        http, client, api_auth, add_rule, approver_auth):
    from app.decisions import service as decisions
    from tests.policies.conftest import APPLICATION_URL

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)
    http.replace("POST", APPLICATION_URL, json={})
    decisions.retry_now(task.decisions.get())

    _set_state(client, approver_auth, task, "Closed")  # ticket_state_changed, in a request: no job needed

    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "done"


def test_rules_keep_waiting_while_a_decision_is_on_its_way_whichever_decision_reads_latest(
        http, client, api_auth, add_rule, approver_auth):
    # A decision EPM refused, stamped later by a host whose clock runs ahead, does not hide the one still on its
    # way: the ticket has a decision, for the job's query as for the check of each ticket.
    from datetime import timedelta

    from app import contract
    from app.models import Decision, utcnow

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)
    Decision.create(task=task, decision=contract.DECISION_APPROVED, reason="ok", decided_by="akim",
                    decided_at=utcnow() + timedelta(minutes=5), ticket_url="https://broker/t",
                    status=contract.DELIVERY_FAILED, last_status=400)

    _set_state(client, approver_auth, task, "On Hold")
    run_job(JOBS["evaluate_policies"])
    approval = _approve(client, task, _as_user("akim"))

    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "waiting"
    assert approval.status_code == 409
    assert approval.json["error"]["message"] == contract.MSG_DECISION_IN_FLIGHT


def test_rules_waiting_on_a_decision_end_as_the_outbox_delivers_it(http, client, api_auth, add_rule, approver_auth):
    from app import contract
    from app.models import Decision, utcnow
    from tests.policies.conftest import APPLICATION_URL

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)
    http.replace("POST", APPLICATION_URL, json={})  # EPM is back
    Decision.update(next_attempt_at=utcnow()).where(Decision.task == task.id).execute()

    run_job(JOBS["deliver_outbox"])  # the scheduler's outbox, no request: evaluate_policies does not run

    assert task.decisions.get().status == contract.DELIVERY_DELIVERED
    _ended_with_no_rule_run(task, f"The request could no longer take a decision ({contract.MSG_FINAL}); no rule ran.")


def test_rules_waiting_on_a_decision_end_as_epm_s_update_webhook_settles_it(
        http, client, api_auth, add_rule, approver_auth, deliver):
    from tests import factories

    add_rule(name="Two for installers", outcome="two_approvers")
    task = _waiting_on_a_denial(http, client, api_auth, approver_auth)

    update = deliver(factories.application_decision(task.request_id, Decision="Denied",
                                                    DecisionPerformedByUser="epm-admin"))

    assert update.status_code == 200
    _ended_with_no_rule_run(task, "EPM had decided the request; no rule ran.")
