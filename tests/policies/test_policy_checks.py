"""Auto-approve: each check on the referenced ticket, each switchable, the duration, and EPM receiving it."""
import json
import re
from datetime import timedelta

import pytest
import requests

from app.itsm.connections import create_connection
from app.models import utcnow
from app.policies.models import PolicyEvaluation
from tests import factories
from tests.policies.conftest import WEBHOOK, application, epm_decisions, notes

SN = "https://corp.service-now.com"
CHANGES = f"{SN}/api/now/table/change_request"


def _time(moment):
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def change_record(number="CHG0001234", state="Scheduled", approval="approved", start=None, end=None,
                  requester="mrivera"):
    """A change as ServiceNow's Table API answers with sysparm_display_value=all."""
    now = utcnow()
    start = start or now - timedelta(hours=1)
    end = end or now + timedelta(minutes=45)
    return {
        "sys_id": {"value": "a" * 32, "display_value": "a" * 32},
        "number": {"value": number, "display_value": number},
        "state": {"value": "-2", "display_value": state},
        "approval": {"value": approval, "display_value": approval.title()},
        "start_date": {"value": _time(start), "display_value": _time(start)},
        "end_date": {"value": _time(end), "display_value": _time(end)},
        "requested_by.user_name": {"value": requester, "display_value": requester},
    }


@pytest.fixture
def servicenow(app):
    return create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "auth_method": "basic",
                              "username": "svc-jit", "secret": "sn-password"}, "root")


@pytest.fixture
def approve_rule(add_rule, servicenow):
    def make(**values):
        settings = {"name": "Scheduled changes", "outcome": "auto_approve", "ticket_source": "corp",
                    "allowed_states": "Scheduled, Implement", "max_duration_minutes": "60", **values}
        return add_rule(**settings)
    return make


def test_a_valid_change_approves_the_request_and_epm_receives_the_approval(http, submit, approve_rule):
    approve_rule()
    http.get(CHANGES, json={"result": [change_record()]})

    task = submit(application("Per CHG0001234, update the VPN client"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    assert body["decisionPerformedByUser"] == "policy-engine"
    assert body["duration"] == str(44 * 60)  # 45 minutes left in the window, less than the 60-minute maximum
    assert task.decisions.get().decided_by == "policy-engine"
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    for passed in ("✓ CHG0001234 exists in ITSM 'corp'", "✓ its state 'Scheduled' is allowed", "✓ it is approved",
                   "✓ its planned window", "✓ its requester 'mrivera' is the JIT requester 'CORP\\mrivera'"):
        assert passed in note
    assert "Approved for 44 minutes" in note


def test_the_lookup_asks_servicenow_for_the_number_with_basic_auth(http, submit, approve_rule):
    approve_rule()
    http.get(CHANGES, json={"result": [change_record()]})

    submit(application("CHG0001234"))

    [call] = [call for call in http.calls if call.request.url.startswith(CHANGES)]
    assert "sysparm_query=number%3DCHG0001234" in call.request.url
    assert "sysparm_display_value=all" in call.request.url
    assert call.request.headers["Authorization"].startswith("Basic ")


def test_the_maximum_caps_a_long_window(http, submit, approve_rule):
    approve_rule(max_duration_minutes="30")
    http.get(CHANGES, json={"result": [change_record(end=utcnow() + timedelta(hours=5))]})

    submit(application("CHG0001234"))

    assert epm_decisions(http)[0]["duration"] == str(30 * 60)


FAILURES = {
    "exists": ({"result": []}, "CHG0001234 was not found in ITSM 'corp'"),
    "state": ({"result": [change_record(state="New")]}, "its state 'New' is not one of Scheduled, Implement"),
    "approved": ({"result": [change_record(approval="requested")]}, "its approval is 'requested', not approved"),
    "window": ({"result": [change_record(start=utcnow() + timedelta(hours=2), end=utcnow() + timedelta(hours=3))]},
               "does not cover now"),
    "requester": ({"result": [change_record(requester="jdoe")]},
                  "its requester 'jdoe' is not the JIT requester 'CORP\\mrivera'"),
}


@pytest.mark.parametrize("check", list(FAILURES))
def test_a_failed_check_leaves_the_request_to_approvers_and_says_why(http, submit, approve_rule, check):
    answer, why = FAILURES[check]
    approve_rule()
    http.get(CHANGES, json=answer)

    task = submit(application("CHG0001234"))

    assert epm_decisions(http) == []
    assert task.decisions.count() == 0
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    assert why in note
    assert "the request is left to approvers" in note


@pytest.mark.parametrize("check", ["state", "approved", "window", "requester"])
def test_each_check_can_be_switched_off(http, submit, approve_rule, check):
    answer, _why = FAILURES[check]
    approve_rule(**{f"check_{check}": "false"})
    http.get(CHANGES, json=answer)

    submit(application("CHG0001234"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    if check == "window":
        # Without the window check the window does not limit the duration: the maximum applies.
        assert body["duration"] == str(60 * 60)


def test_with_every_check_off_a_well_formed_reference_is_enough(http, submit, approve_rule):
    approve_rule(check_exists="false", check_state="false", check_approved="false", check_window="false",
                 check_requester="false")

    submit(application("CHG0001234"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert not [call for call in http.calls if call.request.url.startswith(CHANGES)]


def test_deny_when_invalid_denies_with_the_failed_check(http, submit, approve_rule):
    approve_rule(deny_on_failure="true")
    http.get(CHANGES, json={"result": [change_record(approval="rejected")]})

    submit(application("CHG0001234"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied"
    assert "its approval is 'rejected', not approved" in body["message"]


@pytest.mark.parametrize("reference, shown", [
    ("A" * 1100 + "-1", "A" * 100 + "…"),
    # 101 characters: its first 100 and "…" would be as long, and drop the number that names the ticket.
    ("A" * 99 + "-7", "A" * 99 + "-7"),
], ids=["longer", "101-characters"])
def test_deny_when_invalid_denies_a_long_custom_reference(http, submit, add_rule, reference, shown):
    # docs/connectors.md's Jira pattern has no length limit, and the requester writes the reference.
    add_rule(name="Jira changes", outcome="auto_approve", reference_pattern="regex",
             custom_regex=r"\b([A-Z][A-Z0-9]+-\d+)\b", ticket_source="broker", deny_on_failure="true")

    task = submit(application(f"Per {reference}, install the tool"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied", notes(task)
    assert f"{shown} is not valid: {shown} was not found in the broker" in body["message"]
    assert (reference in body["message"]) == (shown == reference)
    assert any(f"{shown} is not valid" in note for note in notes(task))


def test_a_denial_reason_over_the_limit_is_cut_and_still_sent(http, submit, add_rule):
    # Each ITSM's error names the key it looked up in full: the reason sent keeps to the limit.
    for name in ("jsm", "jsm-eu"):
        create_connection({"name": name, "kind": "jira", "base_url": f"https://{name}.atlassian.net",
                           "username": "svc-jit@acme.example", "secret": "api-token"}, "root")
        http.get(re.compile(rf"https://{name}\.atlassian\.net/.*"), status=500)
    add_rule(name="Jira changes", outcome="auto_approve", reference_pattern="regex",
             custom_regex=r"\b([A-Z][A-Z0-9]+-\d+)\b", deny_on_failure="true")

    task = submit(application("Per " + "A" * 1100 + "-1, install the tool"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied", notes(task)
    assert len(body["message"]) == 2000 and body["message"].endswith("…")
    assert body["message"].startswith("Denied by policy rule 'Jira changes': " + "A" * 100 + "…")


def test_an_unreachable_itsm_never_approves_and_never_fails_the_delivery(http, submit, approve_rule):
    approve_rule()
    http.get(CHANGES, body=requests.ConnectionError("connection refused"))

    task = submit(application("CHG0001234"))

    assert epm_decisions(http) == []
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    assert "ServiceNow 'corp' could not be reached at corp.service-now.com" in note
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).status == "done"


def test_the_requester_check_ignores_domain_and_case(http, submit, approve_rule):
    approve_rule()
    http.get(CHANGES, json={"result": [change_record(requester="MRivera@corp.example")]})

    submit(application("CHG0001234"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]


def test_a_reference_to_the_brokers_own_approved_ticket_is_valid(http, submit, add_rule, client, api_auth):
    now = utcnow()
    earlier = submit(factories.admin_request(UserName="CORP\\akowalski"))
    update = factories.admin_decision(earlier.request_id, StartTime=(now - timedelta(minutes=10)).isoformat() + "Z",
                                      EndTime=(now + timedelta(minutes=50)).isoformat() + "Z")
    assert client.post(WEBHOOK, data=json.dumps(update), content_type="application/json",
                       headers=api_auth).status_code == 200
    add_rule(name="Earlier JIT approval", outcome="auto_approve", ticket_source="broker", allowed_states="New",
             max_duration_minutes="120")

    submit(factories.admin_request(UserName="CORP\\akowalski", Reason=f"Continue work from {earlier.number}"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    assert int(body["duration"]) == 49 * 60


def test_a_policy_that_fails_is_noted_and_the_delivery_still_succeeds(http, submit, add_rule, monkeypatch):
    from app.policies import engine

    add_rule(name="Deny all", outcome="auto_deny")
    monkeypatch.setattr(engine, "judge", lambda *args: 1 / 0)

    task = submit(application("please"))

    assert epm_decisions(http) == []
    evaluation = PolicyEvaluation.get(PolicyEvaluation.task == task)
    assert evaluation.status == "pending" and evaluation.attempts == 1
    assert any("Policy evaluation failed (ZeroDivisionError" in note for note in notes(task))


def test_only_the_exists_check_approves_any_ticket_the_itsm_has(http, submit, approve_rule):
    approve_rule(check_state="false", check_approved="false", check_window="false", check_requester="false")
    http.get(CHANGES, json={"result": [change_record(state="New", approval="rejected", requester="jdoe",
                                                     start=utcnow() + timedelta(days=1),
                                                     end=utcnow() + timedelta(days=2))]})

    task = submit(application("CHG0001234"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved" and body["duration"] == str(60 * 60)
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    assert "Checks passed: ✓ CHG0001234 exists in ITSM 'corp'. Approved for 60 minutes" in note


def test_source_any_looks_in_the_broker_first_then_each_itsm(http, submit, approve_rule):
    approve_rule(ticket_source="any")
    http.get(CHANGES, json={"result": [change_record()]})

    task = submit(application("CHG0001234"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert any("✓ CHG0001234 exists in ITSM 'corp'" in note for note in notes(task))


def test_source_any_reports_every_place_it_looked(http, submit, approve_rule):
    approve_rule(ticket_source="any")
    http.get(CHANGES, json={"result": []})

    task = submit(application("CHG0001234"))

    assert epm_decisions(http) == []
    assert any("CHG0001234 was not found in the broker, ITSM 'corp'" in note for note in notes(task))


def test_decisions_are_taken_as_the_configured_system_identity(http, submit, add_rule):
    from app.models import Account
    from app.policies.rules import update_settings

    update_settings({"system_account": "jit-robot"}, "root")
    add_rule(name="Deny all", outcome="auto_deny")

    task = submit(application("please"))

    [body] = epm_decisions(http)
    assert body["decisionPerformedByUser"] == "jit-robot"
    assert task.decisions.get().decided_by == "jit-robot"
    assert Account.by_username("jit-robot").role == "user"
    assert [note.author for note in task.work_notes if note.text.startswith("Policy evaluation")] == ["jit-robot"]


def test_an_automatic_decision_reaches_epm_exactly_as_a_persons(http, submit, approve_rule, client, approver_auth):
    from app.audit.models import AuditEntry

    approve_rule(publisher="Example*")
    http.get(CHANGES, json={"result": [change_record(end=utcnow() + timedelta(hours=5))]})
    automatic = submit(application("CHG0001234", publisher="Example Networks Inc."))
    human = submit(application("CHG0001234", publisher="Contoso Ltd"))
    answer = client.post(f"/api/x_bets_pmc_jit/tickets/{human.number}/decision", headers=approver_auth,
                         json={"decision": "Approved", "reason": "ok", "duration_unit": "minutes",
                               "duration_value": 60})

    assert answer.status_code == 201
    calls = [call.request for call in http.calls if "management-api" in call.request.url]
    assert [call.url for call in calls] == [calls[0].url, calls[0].url]
    by_policy, by_person = (json.loads(call.body) for call in calls)
    assert set(by_policy) == set(by_person)
    for key in ("decision", "duration"):
        assert by_policy[key] == by_person[key]
    assert (by_policy["decisionPerformedByUser"], by_person["decisionPerformedByUser"]) == ("policy-engine", "jchen")
    assert by_policy["ticketUrl"].endswith(f"/tickets/{automatic.number}")
    assert automatic.decisions.get().status == human.decisions.get().status == "delivered"
    decisions_audited = {entry.actor: entry.object_id for entry in AuditEntry.select().where(
        AuditEntry.object_type == "ticket", AuditEntry.action == "decision")}
    assert decisions_audited == {"policy-engine": automatic.number, "jchen": human.number}


def test_a_reference_cannot_widen_the_servicenow_lookup_to_another_change(http, submit, approve_rule):
    # A permissive custom pattern hands the connector whatever follows "ticket:"; ServiceNow would answer the
    # widened query (`^NQ` ORs a second query in) with some other, approved change of the same requester.
    approve_rule(reference_pattern="regex", custom_regex=r"ticket:(\S+)")
    for table in ("change_request", "task"):  # a number with no known prefix is looked up in `task`
        http.get(f"{SN}/api/now/table/{table}", json={"result": [change_record()]})

    task = submit(application("ticket:CHG0009999^NQnumberSTARTSWITHCHG"))

    assert epm_decisions(http) == []
    assert not [call for call in http.calls if call.request.url.startswith(f"{SN}/api/now/table/")]
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    assert "is no ServiceNow record number" in note and "the request is left to approvers" in note


def test_a_custom_regex_reference_is_looked_up_in_jira(http, submit, add_rule):
    create_connection({"name": "jsm", "kind": "jira", "base_url": "https://acme.atlassian.net",
                       "username": "svc-jit@acme.example", "secret": "api-token",
                       "options": {"start_field": "customfield_10058", "end_field": "customfield_10059"}}, "root")
    add_rule(name="Jira changes", outcome="auto_approve", reference_pattern="regex",
             custom_regex=r"\b([A-Z][A-Z0-9]+-\d+)\b", ticket_source="jsm", allowed_states="Implementing")
    now = utcnow()
    http.get("https://acme.atlassian.net/rest/api/3/issue/ITSM-42", json={"key": "ITSM-42", "fields": {
        "status": {"name": "Implementing"}, "reporter": {"emailAddress": "mrivera@corp.example"},
        "customfield_10058": (now - timedelta(hours=1)).isoformat() + "Z",
        "customfield_10059": (now + timedelta(minutes=30)).isoformat() + "Z"}})
    http.get("https://acme.atlassian.net/rest/servicedeskapi/request/ITSM-42/approval",
             json={"values": [{"id": "1", "finalDecision": "approved"}]})

    task = submit(application("Working on ITSM-42 tonight"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved" and int(body["duration"]) in (29 * 60, 30 * 60)
    assert any("✓ ITSM-42 exists in ITSM 'jsm'" in note for note in notes(task))
