"""Each rule type and matcher, applied to requests EPM delivers, with the decision EPM receives."""
import pytest

from app.models import Decision, Task
from app.policies.models import PolicyEvaluation
from tests import factories
from tests.policies.conftest import application, epm_decisions, notes


def test_auto_deny_sends_the_configured_reason_to_epm_as_the_system_identity(http, submit, add_rule):
    add_rule(name="No installers", outcome="auto_deny", deny_reason="Installers need a change request")

    task = submit(application("please"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied"
    assert body["message"] == "Installers need a change request"
    assert body["decisionPerformedByUser"] == "policy-engine"
    assert any("Rule 1 'No installers' matched and denied the request automatically" in note for note in notes(task))


def test_a_request_no_rule_matches_is_left_to_approvers(http, submit, add_rule):
    add_rule(name="Admin only", outcome="auto_deny", kind="admin")

    task = submit(application("please"))

    assert epm_decisions(http) == []
    assert task.decisions.count() == 0
    assert PolicyEvaluation.get(PolicyEvaluation.task == task).outcome == "no rule matched; left to approvers"


def test_kind_matches_only_its_kind(http, submit, add_rule):
    add_rule(name="Admin only", outcome="auto_deny", kind="admin")

    admin_task = submit(factories.admin_request())

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert admin_task.decisions.count() == 1


@pytest.mark.parametrize("matcher, matching, other", [
    ("publisher", {"publisher": "Example Networks Inc."}, {"publisher": "Contoso Ltd"}),
    ("workstyle", {"workstyle": "Standard Users"}, {"workstyle": "Developers"}),
    ("application_group", {"applicationGroup": "Installers - Approval Required"}, {"applicationGroup": "Browsers"}),
    ("computer_group", {"ComputerGroup": "Lisbon Laptops"}, {"ComputerGroup": "Servers"}),
    ("group_id", {"GroupId": "7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098"}, {"GroupId": "00000000-0000-0000-0000-0"}),
    ("user", {"user": "CORP\\mrivera"}, {"user": "CORP\\jdoe"}),
])
def test_each_matcher_decides_which_requests_a_rule_applies_to(http, submit, add_rule, matcher, matching, other):
    patterns = {"publisher": "example networks*", "workstyle": "Standard Users", "application_group": "Installers*",
                "computer_group": "Lisbon *", "group_id": "7e5d4c3b-*", "user": "corp\\mriv?ra"}
    add_rule(name=f"by {matcher}", outcome="auto_deny", **{matcher: patterns[matcher]})

    denied = submit(factories.application_request(**matching))
    left = submit(factories.application_request(**other))

    assert denied.decisions.count() == 1
    assert left.decisions.count() == 0
    assert len(epm_decisions(http)) == 1


def test_group_id_matches_admin_requests_too(http, submit, add_rule):
    add_rule(name="Servers group", outcome="auto_deny", group_id="7E5D4C3B-*")

    matching = submit(factories.admin_request(GroupId="7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098"))
    other = submit(factories.admin_request(GroupId="00000000-2a19-4807-b6f5-e4d3c2b1a098"))

    assert matching.decisions.count() == 1
    assert other.decisions.count() == 0


def test_every_matcher_a_rule_sets_must_match(http, submit, add_rule):
    add_rule(name="Installers on laptops", outcome="auto_deny", kind="application", application_group="Installers*",
             computer_group="Lisbon *")

    both = submit(factories.application_request(applicationGroup="Installers", ComputerGroup="Lisbon Laptops"))
    one = submit(factories.application_request(applicationGroup="Installers", ComputerGroup="Servers"))

    assert both.decisions.count() == 1
    assert one.decisions.count() == 0


def test_a_pattern_without_wildcards_is_an_exact_match_in_any_case(http, submit, add_rule):
    add_rule(name="exact", outcome="auto_deny", publisher="EXAMPLE NETWORKS INC.")

    exact = submit(factories.application_request(publisher="Example Networks Inc."))
    longer = submit(factories.application_request(publisher="Example Networks Inc. (EU)"))

    assert exact.decisions.count() == 1
    assert longer.decisions.count() == 0


def test_rules_run_in_order_and_the_first_final_outcome_decides(http, submit, add_rule):
    add_rule(name="Exempt developers", outcome="exempt", workstyle="Developers")
    add_rule(name="Deny the rest", outcome="auto_deny")

    developer = submit(factories.application_request(workstyle="Developers"))
    other = submit(factories.application_request(workstyle="Standard Users"))

    assert developer.decisions.count() == 0
    assert any("Rule 1 'Exempt developers' matched: the request is exempt" in note for note in notes(developer))
    assert other.decisions.count() == 1


def test_exempt_users_skip_every_rule(http, submit, add_rule):
    from app.policies.rules import update_settings

    add_rule(name="Deny all", outcome="auto_deny")
    update_settings({"exempt_users": "CORP\\adm-*, svc-backup"}, "root")

    admin = submit(factories.application_request(user="CORP\\adm-jchen"))
    user = submit(factories.application_request(user="CORP\\mrivera"))

    assert admin.decisions.count() == 0
    assert any("is on the exempt list" in note for note in notes(admin))
    assert user.decisions.count() == 1


def test_a_disabled_rule_is_skipped(http, submit, add_rule):
    add_rule(name="Off", outcome="auto_deny", enabled="false")

    task = submit(application("please"))

    assert task.decisions.count() == 0
    assert epm_decisions(http) == []


def test_require_ticket_denies_a_reason_without_a_reference(http, submit, add_rule):
    add_rule(name="Ticket required", outcome="require_ticket")

    task = submit(application("Need to update the VPN client"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Denied"
    assert "A ticket reference is required" in body["message"]
    assert any("quotes no ticket reference" in note for note in notes(task))


@pytest.mark.parametrize("reason, reference", [
    ("inc0010001: broken VPN", "INC0010001"),
    ("Per CHG0001234 tonight", "CHG0001234"),
    ("change task CTASK0001001", "CTASK0001001"),
    ("(REQ0010020)", "REQ0010020"),
    ("see RITM0001234", "RITM0001234"),
    ("root cause PRB0000050.", "PRB0000050"),
    ("project PRJ0000011", "PRJ0000011"),
    ("PRJTASK0000042 rollout", "PRJTASK0000042"),
    ("task TASK0000007", "TASK0000007"),
    ("catalog task SCTASK0010003", "SCTASK0010003"),
])
def test_require_ticket_lets_servicenow_references_through_to_the_next_rule(http, submit, add_rule, reason,
                                                                            reference):
    add_rule(name="Ticket required", outcome="require_ticket")

    task = submit(application(reason))

    assert epm_decisions(http) == []
    assert any(f"the reason quotes {reference}; the next rule decides" in note for note in notes(task))


@pytest.mark.parametrize("reason", ["CHG000123 is too short", "CHG00012345 is too long", "XCHG0001234 glued",
                                    "INCIDENT0001234 is not a prefix", "CHG-0001234 has a dash"])
def test_require_ticket_refuses_malformed_servicenow_numbers(http, submit, add_rule, reason):
    add_rule(name="Ticket required", outcome="require_ticket")

    task = submit(application(reason))

    assert task.decisions.get().decision == "Denied"


def test_require_ticket_with_a_custom_regex(http, submit, add_rule):
    add_rule(name="Jira key", outcome="require_ticket", reference_pattern="regex", custom_regex=r"\b(OPS-\d+)\b",
             deny_reason="Quote the OPS ticket")

    with_key = submit(application("for OPS-42"))
    without = submit(application("for CHG0001234"))

    assert with_key.decisions.count() == 0
    assert without.decisions.get().reason == "Quote the OPS ticket"


def test_two_approvers_rule_is_recorded_for_the_ticket(http, submit, add_rule):
    add_rule(name="Servers need two", outcome="two_approvers")

    task = submit(application("please"))

    assert epm_decisions(http) == []
    assert Task.get_by_id(task.id).approvals_required == 2
    assert any("two different approvers" in note for note in notes(task))


def test_dry_run_rule_notes_what_it_would_do_and_does_nothing(http, submit, add_rule):
    add_rule(name="Deny all", outcome="auto_deny", dry_run="true")

    task = submit(application("please"))

    assert epm_decisions(http) == []
    assert Decision.select().count() == 0
    assert any("[dry run] Rule 1 'Deny all' matched and would have denied" in note for note in notes(task))


def test_dry_run_rule_lets_the_next_rule_decide(http, submit, add_rule):
    add_rule(name="Trying out", outcome="exempt", dry_run="true")
    add_rule(name="Deny all", outcome="auto_deny")

    task = submit(application("please"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    assert any("would have exempted" in note for note in notes(task))


def test_global_dry_run_turns_every_rule_into_a_note(http, submit, add_rule):
    from app.policies.rules import update_settings

    add_rule(name="Deny all", outcome="auto_deny")
    add_rule(name="Two", outcome="two_approvers")
    update_settings({"dry_run": "true"}, "root")

    task = submit(application("please"))

    assert epm_decisions(http) == []
    [note] = [note for note in notes(task) if note.startswith("Policy evaluation")]
    assert "[global dry run] Rule 1 'Deny all' matched and would have denied" in note
    assert "[global dry run] Rule 2 'Two' matched and would have required two approvers" in note
    assert Task.get_by_id(task.id).approvals_required == 1


def test_update_events_and_duplicates_are_not_evaluated_again(http, submit, client, api_auth, add_rule):
    import json

    add_rule(name="Deny all", outcome="auto_deny")
    body = application("please")
    submit(body)
    again = client.post("/api/x_bets_pmc_jit/authorization_request_webhook_handler", data=json.dumps(body),
                        content_type="application/json", headers=api_auth)
    again.close()

    assert again.json["result"]["status"] == "duplicate"
    assert len(epm_decisions(http)) == 1
