"""Failsafe bypass codes: a quoted valid code counts as a valid ticket; single use, expiry, revocation, audit."""
import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest

from app import claims
from app.audit.models import AuditEntry
from app.decisions import approvals
from app.errors import BadRequest
from app.jobs.registry import JOBS, run_job
from app.models import Task, utcnow
from app.policies import bypass, engine
from app.policies.models import BypassCode, PolicyEvaluation
from app.policies.queue import run_evaluation
from tests.policies.conftest import WEBHOOK, application, epm_decisions, notes


@pytest.fixture
def approve_rule(add_rule):
    return add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker",
                    max_duration_minutes="60")


def test_an_admin_issues_a_code_from_the_cli(runner):
    result = runner.invoke(args=["policy", "bypass", "issue", "--label", "ServiceNow outage", "--valid-hours", "8"])

    assert result.exit_code == 0, result.output
    code = re.search(r"BYPASS-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", result.output).group(0)
    record = BypassCode.get()
    assert record.code_hash == bypass.code_hash(code)
    assert record.single_use and record.label == "ServiceNow outage"
    assert AuditEntry.get(AuditEntry.action == "bypass_code_issue").object_id == record.sys_id


def test_a_quoted_code_approves_for_the_maximum_and_its_use_is_audited(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "outage", single_use=True)

    task = submit(application(f"ITSM is down, bypass {code.lower()}"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    assert body["duration"] == str(60 * 60)
    assert any(f"failsafe bypass code …{record.hint}" in note for note in notes(task))
    entry = AuditEntry.get(AuditEntry.action == "bypass_code_use")
    assert entry.object_id == record.sys_id
    assert entry.detail["ticket"] == task.number and entry.detail["requester"] == "CORP\\mrivera"
    assert BypassCode.get_by_id(record.id).last_used_on == task.number


def test_a_single_use_code_works_once(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "outage", single_use=True)

    submit(application(f"bypass {code}"))
    second = submit(application(f"bypass {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert second.decisions.count() == 0
    assert BypassCode.get_by_id(record.id).used_count == 1
    assert AuditEntry.select().where(AuditEntry.action == "bypass_code_use").count() == 1


def test_a_time_limited_code_works_until_it_expires(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "maintenance", single_use=False, valid_hours=0.5)

    submit(application(f"bypass {code}"))
    submit(application(f"bypass {code}"))
    BypassCode.update(expires_at=utcnow() - timedelta(seconds=1)).where(BypassCode.id == record.id).execute()
    expired = submit(application(f"bypass {code}"))

    bodies = epm_decisions(http)
    assert [body["decision"] for body in bodies] == ["Approved", "Approved"]
    # The approval ends no later than the code: 30 minutes left, less than the 60-minute maximum.
    assert int(bodies[0]["duration"]) in (29 * 60, 30 * 60)
    assert expired.decisions.count() == 0
    assert bypass.status(BypassCode.get_by_id(record.id)) == "expired"
    # Every use is audited, each with the ticket it let through.
    uses = AuditEntry.select().where(AuditEntry.action == "bypass_code_use").order_by(AuditEntry.id)
    assert [entry.detail["ticket"] for entry in uses] == [task.number for task in Task.select().order_by(Task.id)][:2]
    assert BypassCode.get_by_id(record.id).used_count == 2


def test_a_revoked_code_is_not_valid(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "spare", single_use=True)
    bypass.revoke_code(record, "root")

    task = submit(application(f"bypass {code}"))

    assert task.decisions.count() == 0
    assert any("the reason quotes no ticket reference" in note for note in notes(task))


def test_a_code_satisfies_require_ticket_and_is_used_once_by_the_rules_after_it(http, submit, add_rule):
    add_rule(name="Ticket required", outcome="require_ticket")
    add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker")
    record, code = bypass.issue_code("root", "outage", single_use=True)

    submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert BypassCode.get_by_id(record.id).used_count == 1


def test_dry_run_does_not_use_up_a_code(http, submit, add_rule):
    add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker", dry_run="true")
    record, code = bypass.issue_code("root", "outage", single_use=True)

    task = submit(application(f"bypass {code}"))

    assert epm_decisions(http) == []
    assert BypassCode.get_by_id(record.id).used_count == 0
    assert any("would have approved" in note for note in notes(task))


def _queued(client, api_auth, body):
    """Deliver a created event and keep the answer open, so the ticket's rules wait in the queue."""
    response = client.post(WEBHOOK, data=json.dumps(body), content_type="application/json", headers=api_auth)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response, Task.get(Task.number == response.json["result"]["ticket"])


def _code_unused(record):
    return (bypass.status(BypassCode.get_by_id(record.id)) == "active"
            and not AuditEntry.select().where(AuditEntry.action == "bypass_code_use").exists())


def test_a_bypass_code_is_not_spent_on_a_request_a_person_already_denied(http, client, api_auth, approver,
                                                                         approve_rule):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    response, task = _queued(client, api_auth, application(f"ITSM is down, bypass {code}"))
    # While the rules are queued a person may deny (a denial needs one person); EPM receives it.
    approvals.submit_decision(task, approver, "Denied", "Not on this machine")

    response.close()  # the queued evaluation runs now

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert _code_unused(record), notes(task)
    said = notes(task)[-1]
    assert said.startswith("No policy rule ran: the request could no longer take a decision") and \
        "left to approvers" not in said
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).outcome.endswith("no rule ran.")


def test_a_bypass_code_is_not_spent_on_a_request_that_expired_in_the_queue(http, client, api_auth, approve_rule):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    response, task = _queued(client, api_auth, application(f"ITSM is down, bypass {code}"))
    Task.update(expired_at=utcnow()).where(Task.id == task.id).execute()

    response.close()

    assert epm_decisions(http) == []
    assert _code_unused(record), notes(task)
    assert "expired without a decision" in notes(task)[-1]


def _person_denies_while_rules_run(monkeypatch, approver, rule_name):
    """A person denies the request while `rule_name` is judged (as during a slow ITSM look-up)."""
    judge = engine.judge

    def judge_meanwhile(rule, facts, now, claimed_code=None):
        if rule.name == rule_name:
            approvals.submit_decision(Task.select().get(), approver, "Denied", "Not on this machine")
        return judge(rule, facts, now, claimed_code)

    monkeypatch.setattr(engine, "judge", judge_meanwhile)


def test_a_person_denying_while_the_rules_run_keeps_the_code_unspent(http, submit, approver, approve_rule,
                                                                     monkeypatch):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    _person_denies_while_rules_run(monkeypatch, approver, "Approve valid tickets")

    task = submit(application(f"ITSM is down, bypass {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert _code_unused(record), notes(task)
    said = notes(task)[-1]
    assert said.startswith("The policy decision could not be taken: The server has accepted the decision")
    assert f"The failsafe bypass code …{record.hint} was not used." in said and "left to approvers" not in said
    assert not any("was used (audited)" in note for note in notes(task))


def test_a_require_ticket_rule_does_not_spend_a_code_on_a_request_a_person_denied(http, submit, approver,
                                                                                  add_rule, monkeypatch):
    add_rule(name="Ticket required", outcome="require_ticket")
    add_rule(name="Two for installers", outcome="two_approvers")  # no decision follows: the code counts at the end
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    _person_denies_while_rules_run(monkeypatch, approver, "Ticket required")

    task = submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert _code_unused(record), notes(task)
    assert (f"No rule decided: the request can no longer take a decision (The server has accepted the decision. "
            f"It is now final and cannot be changed); the failsafe bypass code …{record.hint} was not used."
            in notes(task)[-1])


def test_a_code_another_request_spends_meanwhile_approves_nothing(http, submit, approve_rule, monkeypatch):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    judge = engine.judge

    def judge_meanwhile(rule, facts, now, claimed_code=None):
        verdict = judge(rule, facts, now, claimed_code)
        other = SimpleNamespace(number="INC0099999", request_id="another-request", requester="CORP\\kpatel")
        assert bypass.use_code(record, "policy-engine", other, rule)  # another request's rules, a moment sooner
        return verdict

    monkeypatch.setattr(engine, "judge", judge_meanwhile)

    task = submit(application(f"ITSM is down, bypass {code}"))

    assert epm_decisions(http) == [] and task.decisions.count() == 0
    assert BypassCode.get_by_id(record.id).used_count == 1
    said = notes(task)[-1]
    assert f"The failsafe bypass code …{record.hint} stopped being valid before it could be used." in said
    assert "No rule decided; the request is left to approvers." in said and "approved" not in said


def test_a_code_must_be_single_use_or_time_limited(app):
    with pytest.raises(BadRequest, match="single-use, time-limited, or both"):
        bypass.issue_code("root", "forever", single_use=False, valid_hours=None)


def test_codes_are_listed_and_revoked_from_the_cli(runner):
    record, _code = bypass.issue_code("root", "spare", single_use=True)

    listed = runner.invoke(args=["policy", "bypass", "list"])
    revoked = runner.invoke(args=["policy", "bypass", "revoke", record.sys_id])
    after = runner.invoke(args=["policy", "bypass", "list", "--all"])

    assert f"…{record.hint}\tactive" in listed.output
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert f"…{record.hint}\trevoked" in after.output
    assert AuditEntry.get(AuditEntry.action == "bypass_code_revoke").object_id == record.sys_id


# A code a "requires a ticket reference" rule lets the request through on counts with what follows.

@pytest.fixture
def gate(add_rule):
    return add_rule(name="Ticket required", outcome="require_ticket")


def test_a_code_a_require_ticket_rule_accepted_stays_unused_when_the_approval_after_it_is_refused(
        http, submit, approver, gate, approve_rule, monkeypatch):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    _person_denies_while_rules_run(monkeypatch, approver, "Approve valid tickets")

    task = submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert _code_unused(record), notes(task)
    said = notes(task)[-1]
    assert said.startswith("The policy decision could not be taken: The server has accepted the decision")
    assert f"The failsafe bypass code …{record.hint} was not used." in said
    assert not any("was used (audited)" in note for note in notes(task))


def test_a_code_a_require_ticket_rule_accepted_stays_unused_when_the_denial_after_it_is_refused(
        http, submit, approver, gate, add_rule, monkeypatch):
    add_rule(name="No installers", outcome="auto_deny")
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    _person_denies_while_rules_run(monkeypatch, approver, "No installers")

    task = submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert _code_unused(record), notes(task)
    assert f"The failsafe bypass code …{record.hint} was not used." in notes(task)[-1]


def test_a_code_a_require_ticket_rule_accepted_is_used_with_the_denial_after_it(http, submit, gate, add_rule):
    add_rule(name="No installers", outcome="auto_deny")
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)

    task = submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert BypassCode.get_by_id(record.id).used_count == 1
    assert AuditEntry.get(AuditEntry.action == "bypass_code_use").detail["rule"] == "Ticket required"
    assert any(f"The failsafe bypass code …{record.hint} was used (audited)." in note for note in notes(task))


def test_a_code_a_require_ticket_rule_accepted_is_used_when_the_request_is_left_to_two_approvers(
        http, submit, gate, add_rule):
    add_rule(name="Two for installers", outcome="two_approvers")
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)

    task = submit(application(f"no ITSM today: {code}"))

    assert epm_decisions(http) == []
    assert Task.get_by_id(task.id).approvals_required == 2
    assert BypassCode.get_by_id(record.id).used_count == 1
    assert f"The failsafe bypass code …{record.hint} was used (audited)." in notes(task)[-1]


class _Killed(BaseException):
    """The process stops here, as when it is killed: no handler of the broker's runs."""


def _run_killed_before_the_evaluation_ends_then_again(monkeypatch, task):
    """Run `task`'s queued evaluation in a process that stops as it marks the evaluation ended, then, once that
    process's claim runs out, run the evaluate_policies job (a new process); returns the evaluation."""
    evaluation = PolicyEvaluation.get(PolicyEvaluation.task == task)
    release = claims.release_attempt

    def killed_before_the_evaluation_ends(model, row, **values):
        if model is not PolicyEvaluation:
            return release(model, row, **values)
        monkeypatch.setattr(claims, "release_attempt", release)  # once: the process that runs it again is a new one
        raise _Killed()

    monkeypatch.setattr(claims, "release_attempt", killed_before_the_evaluation_ends)
    with pytest.raises(_Killed):
        run_evaluation(evaluation.id)
    PolicyEvaluation.update(claimed_until=utcnow() - timedelta(seconds=1)).where(
        PolicyEvaluation.id == evaluation.id).execute()  # the dead process's claim runs out
    run_job(JOBS["evaluate_policies"])
    return evaluation


@pytest.mark.parametrize("single_use, valid_hours", [(True, None), (False, 8)], ids=["single-use", "time-limited"])
def test_a_code_a_require_ticket_rule_accepted_counts_once_when_the_process_stops_before_the_evaluation_ends(
        http, client, api_auth, gate, add_rule, monkeypatch, single_use, valid_hours):
    add_rule(name="Two for installers", outcome="two_approvers")
    record, code = bypass.issue_code("root", "ITSM outage", single_use=single_use, valid_hours=valid_hours)
    response, task = _queued(client, api_auth, application(f"no ITSM today: {code}"))
    evaluation = _run_killed_before_the_evaluation_ends_then_again(monkeypatch, task)
    response.close()

    assert epm_decisions(http) == []
    assert PolicyEvaluation.get_by_id(evaluation.id).status == "done"
    assert Task.get_by_id(task.id).approvals_required == 2
    assert BypassCode.get_by_id(record.id).used_count == 1
    assert AuditEntry.select().where(AuditEntry.action == "bypass_code_use").count() == 1
    [said] = [note for note in notes(task) if note.startswith("Policy evaluation:")]
    assert f"The failsafe bypass code …{record.hint} was used (audited)." in said


@pytest.mark.parametrize("with_code", [False, True], ids=["denial", "approval-on-a-code"])
def test_a_rule_s_decision_stays_the_evaluation_s_outcome_when_the_process_stops_before_the_evaluation_ends(
        http, client, api_auth, add_rule, approve_rule, monkeypatch, with_code):
    if with_code:
        record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
        reason, expected = f"ITSM is down, bypass {code}", "approved by Rule 1 'Approve valid tickets'"
    else:
        approve_rule.delete_instance()
        add_rule(name="Deny all", outcome="auto_deny")
        reason, expected = "please", "denied by Rule 1 'Deny all'"
    response, task = _queued(client, api_auth, application(reason))

    evaluation = _run_killed_before_the_evaluation_ends_then_again(monkeypatch, task)
    response.close()

    ended = PolicyEvaluation.get_by_id(evaluation.id)
    assert (ended.status, ended.outcome) == ("done", expected)
    assert [step["verdict"] for step in ended.steps if step["matched"]] == ["approve" if with_code else "deny"]
    assert [body["decision"] for body in epm_decisions(http)] == ["Approved" if with_code else "Denied"]
    assert task.decisions.count() == 1
    assert not [note for note in notes(task) if "No policy rule ran" in note]
    if with_code:
        assert BypassCode.get_by_id(record.id).used_count == 1
        [said] = [note for note in notes(task) if note.startswith("Policy evaluation:")]
        assert f"The failsafe bypass code …{record.hint} was used (audited)." in said


@pytest.mark.parametrize("rules, reason", [
    ([{"name": "Approve valid tickets", "outcome": "auto_approve", "ticket_source": "broker"}],
     "ITSM is down, bypass {code}"),
    ([{"name": "No installers", "outcome": "auto_deny"}], "please"),
    ([{"name": "Ticket required", "outcome": "require_ticket"}, {"name": "Two for installers",
                                                                 "outcome": "two_approvers"}],
     "no ITSM today: {code}"),
], ids=["approval", "denial", "left-to-approvers"])
def test_the_notes_tell_one_outcome_when_a_person_decides_meanwhile_and_the_process_stops_before_the_evaluation_ends(
        http, client, api_auth, approver, add_rule, monkeypatch, rules, reason):
    for rule in rules:
        add_rule(**rule)
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    _person_denies_while_rules_run(monkeypatch, approver, rules[0]["name"])
    response, task = _queued(client, api_auth, application(reason.format(code=code)))

    evaluation = _run_killed_before_the_evaluation_ends_then_again(monkeypatch, task)
    response.close()

    # The stopped process left nothing of its rules' outcome; the run after it found the person's decision.
    ended = PolicyEvaluation.get_by_id(evaluation.id)
    assert ended.status == "done" and ended.outcome.endswith("no rule ran."), ended.outcome
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]  # the person's
    assert _code_unused(record), notes(task)
    said = [note for note in notes(task) if note.startswith(("Policy evaluation", "No policy rule ran"))]
    assert [note.split(":")[0] for note in said] == ["No policy rule ran"], said


def test_a_code_spent_elsewhere_leaves_the_request_to_approvers_once_when_the_process_stops_before_the_evaluation_ends(
        http, client, api_auth, approve_rule, monkeypatch):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    judge = engine.judge

    def judge_meanwhile(rule, facts, now, claimed_code=None):
        verdict = judge(rule, facts, now, claimed_code)
        if bypass.status(BypassCode.get_by_id(record.id)) != "used":
            other = SimpleNamespace(number="INC0099999", request_id="another-request", requester="CORP\\kpatel")
            assert bypass.use_code(record, "policy-engine", other, rule)  # another request's rules, a moment sooner
        return verdict

    monkeypatch.setattr(engine, "judge", judge_meanwhile)
    response, task = _queued(client, api_auth, application(f"ITSM is down, bypass {code}"))

    evaluation = _run_killed_before_the_evaluation_ends_then_again(monkeypatch, task)
    response.close()

    # The stopped process left nothing of its rules' outcome; the run after it found the code spent.
    ended = PolicyEvaluation.get_by_id(evaluation.id)
    assert ended.status == "done" and ended.outcome.endswith("left to approvers"), ended.outcome
    assert epm_decisions(http) == [] and task.decisions.count() == 0
    [said] = [note for note in notes(task) if note.startswith("Policy evaluation:")]
    assert said.endswith("No rule decided; the request is left to approvers.")


def test_a_require_ticket_rule_denies_when_its_code_is_spent_elsewhere_before_the_approval(
        http, submit, gate, approve_rule, monkeypatch):
    record, code = bypass.issue_code("root", "ITSM outage", single_use=True)
    judge = engine.judge

    def judge_meanwhile(rule, facts, now, claimed_code=None):
        if rule.name == "Approve valid tickets":  # another request's rules spend the code a moment sooner
            other = SimpleNamespace(number="INC0099999", request_id="another-request", requester="CORP\\kpatel")
            bypass.use_code(record, "policy-engine", other, rule)
        return judge(rule, facts, now, claimed_code)

    monkeypatch.setattr(engine, "judge", judge_meanwhile)

    task = submit(application(f"no ITSM today: {code}"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied" and body["message"].startswith("A ticket reference is required")
    assert BypassCode.get_by_id(record.id).last_used_on == "INC0099999"
    assert f"The failsafe bypass code …{record.hint} stopped being valid before it could be used." in \
        "\n".join(notes(task))
