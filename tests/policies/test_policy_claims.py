"""An evaluation run past its claim (a slow rule, a slow ITSM) while another process took the evaluation over: the late
run stores nothing, and the run that claimed it after keeps its claim and its outcome."""
import json
from datetime import timedelta

import pytest

from app import claims
from app.models import Decision, Task
from app.policies import engine, queue
from app.policies.models import EVALUATION_DONE, EVALUATION_RUNNING, PolicyEvaluation
from tests.policies.conftest import WEBHOOK, application, epm_decisions, notes


def _queued(client, api_auth, body):
    """Deliver a created event and keep the answer open, so the ticket's rules wait in the queue."""
    response = client.post(WEBHOOK, data=json.dumps(body), content_type="application/json", headers=api_auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return PolicyEvaluation.get(PolicyEvaluation.task == Task.get(Task.number == response.json["result"]["ticket"]))


def _taken_over(evaluation_id):
    """The run under way outlives its claim, and another process claims the evaluation for the next attempt."""
    PolicyEvaluation.update(claimed_until=claims.database_now() - timedelta(seconds=1)).where(
        PolicyEvaluation.id == evaluation_id).execute()
    assert claims.claim_attempt(PolicyEvaluation, evaluation_id, queue.CLAIM_SECONDS)


def _while_judging(monkeypatch, then):
    """Run `then()` as the rules start judging the request (the first time only), as a slow rule lets it happen."""
    judge = engine.judge

    def slow_judge(*args):
        monkeypatch.setattr(engine, "judge", judge)
        then()
        return judge(*args)

    monkeypatch.setattr(engine, "judge", slow_judge)


def _still_the_second_attempt_s(evaluation):
    """The evaluation is as the second attempt's claim left it: running, claimed, nothing stored."""
    row = PolicyEvaluation.get_by_id(evaluation.id)
    assert (row.status, row.attempts, row.outcome, row.steps, row.error) == (EVALUATION_RUNNING, 2, "", [], None)
    assert row.claimed_until > claims.database_now()
    assert Task.get_by_id(row.task_id).approvals_required is None, "nobody approves before the rules have run"
    assert not [text for text in notes(row.task) if "polic" in text.lower()]


def _dropped(caplog, evaluation):
    return [record.levelname for record in caplog.records
            if f"policy evaluation {evaluation.id} " in record.getMessage() and "attempt 1" in record.getMessage()
            and "dropped" in record.getMessage()]


@pytest.mark.parametrize("outcome", ["auto_deny", "two_approvers"])
def test_a_run_past_its_claim_stores_nothing_once_another_attempt_claimed_the_evaluation(
        http, client, api_auth, add_rule, monkeypatch, caplog, outcome):
    add_rule(name="The rule", outcome=outcome)
    evaluation = _queued(client, api_auth, application("please"))
    _while_judging(monkeypatch, lambda: _taken_over(evaluation.id))

    queue.run_evaluation(evaluation.id)

    _still_the_second_attempt_s(evaluation)
    assert Decision.select().count() == 0 and epm_decisions(http) == []
    assert _dropped(caplog, evaluation) == ["INFO"]


def test_a_run_past_its_claim_leaves_the_decision_of_the_attempt_that_took_over_as_the_outcome(
        http, client, api_auth, add_rule, monkeypatch, caplog):
    add_rule(name="Deny all", outcome="auto_deny")
    evaluation = _queued(client, api_auth, application("please"))

    def taken_over_and_decided():
        PolicyEvaluation.update(claimed_until=claims.database_now() - timedelta(seconds=1)).where(
            PolicyEvaluation.id == evaluation.id).execute()
        queue.run_evaluation(evaluation.id)  # another process, all the way through

    _while_judging(monkeypatch, taken_over_and_decided)

    queue.run_evaluation(evaluation.id)

    row = PolicyEvaluation.get_by_id(evaluation.id)
    assert (row.status, row.attempts, row.outcome) == (EVALUATION_DONE, 2, "denied by Rule 1 'Deny all'")
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert Decision.select().count() == 1
    said = notes(row.task)
    assert len([text for text in said if text.startswith("Policy evaluation:")]) == 1
    assert not [text for text in said if "could not be taken" in text]
    assert _dropped(caplog, evaluation) == ["INFO"]


def test_a_run_past_its_claim_that_finds_no_rule_to_run_leaves_the_evaluation_to_the_attempt_that_took_over(
        http, client, api_auth, add_rule, approver_auth, monkeypatch, caplog):
    add_rule(name="Two for installers", outcome="two_approvers")
    evaluation = _queued(client, api_auth, application("please"))
    answer = client.patch(f"/api/x_bets_pmc_jit/tickets/{evaluation.task.number}", json={"state": "Resolved"},
                          headers=approver_auth)
    assert answer.status_code == 200
    why_no_rule_runs = queue._why_no_rule_runs

    def slow(task):
        _taken_over(evaluation.id)
        return why_no_rule_runs(task)

    monkeypatch.setattr(queue, "_why_no_rule_runs", slow)

    queue.run_evaluation(evaluation.id)

    _still_the_second_attempt_s(evaluation)
    assert _dropped(caplog, evaluation) == ["INFO"]


def test_a_run_past_its_claim_that_fails_leaves_the_evaluation_to_the_attempt_that_took_over(
        http, client, api_auth, add_rule, monkeypatch, caplog):
    add_rule(name="Two for installers", outcome="two_approvers")
    evaluation = _queued(client, api_auth, application("please"))

    def broken_after_a_while(*args):
        _taken_over(evaluation.id)
        raise RuntimeError("the ITSM answered nonsense")

    monkeypatch.setattr(engine, "judge", broken_after_a_while)

    queue.run_evaluation(evaluation.id)

    _still_the_second_attempt_s(evaluation)
    assert _dropped(caplog, evaluation) == ["INFO"]
