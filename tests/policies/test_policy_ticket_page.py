"""Every automatic decision is explained on the ticket page an approver opens."""
import html

import pytest

from app.itsm.connections import create_connection
from app.policies.rules import update_settings
from tests.policies.conftest import application
from tests.policies.test_policy_checks import CHANGES, SN, change_record


@pytest.fixture
def page(as_approver):
    def page(task):
        answer = as_approver.get(f"/tickets/{task.number}")
        assert answer.status_code == 200
        return html.unescape(answer.get_data(as_text=True))
    return page


def notes_section(text):
    return text[text.index('id="notes"'):]


def test_an_automatic_approval_shows_who_decided_and_every_check_that_passed(http, submit, add_rule, page):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc", "secret": "pw"},
                      "root")
    add_rule(name="Scheduled changes", outcome="auto_approve", ticket_source="corp", allowed_states="Scheduled")
    http.get(CHANGES, json={"result": [change_record()]})

    text = page(submit(application("Per CHG0001234")))

    decision = text[text.index('id="decision-heading"'):text.index('id="ticket-heading"')]
    assert "Approved" in decision and "policy-engine" in decision
    assert "Approved automatically by policy rule 'Scheduled changes': CHG0001234 is valid" in decision
    notes = notes_section(text)
    assert "<strong>policy-engine</strong>" in notes
    assert "Rule 1 'Scheduled changes' matched and approved the request automatically: CHG0001234 is valid." in notes
    for check in ("✓ CHG0001234 exists in ITSM 'corp'", "✓ its state 'Scheduled' is allowed", "✓ it is approved",
                  "✓ its planned window", "✓ its requester 'mrivera' is the JIT requester 'CORP\\mrivera'"):
        assert check in notes
    assert "Approved for 44 minutes" in notes


def test_an_automatic_denial_shows_the_rule_and_the_reason(http, submit, add_rule, page):
    add_rule(name="No installers", outcome="auto_deny", deny_reason="Use the software catalogue")

    text = page(submit(application("please")))

    decision = text[text.index('id="decision-heading"'):text.index('id="ticket-heading"')]
    assert "Denied" in decision and "Use the software catalogue" in decision and "policy-engine" in decision
    assert "Rule 1 'No installers' matched and denied the request automatically" in notes_section(text)


def test_a_failed_check_explains_why_the_request_was_left_to_approvers(http, submit, add_rule, page):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc", "secret": "pw"},
                      "root")
    add_rule(name="Scheduled changes", outcome="auto_approve", ticket_source="corp", allowed_states="Scheduled")
    http.get(CHANGES, json={"result": [change_record(approval="requested")]})

    text = page(submit(application("CHG0001234")))

    notes = notes_section(text)
    assert ("Rule 1 'Scheduled changes' matched: CHG0001234 is not valid: its approval is 'requested', not approved "
            "(passed: CHG0001234 exists in ITSM 'corp'; its state 'Scheduled' is allowed); the next rule decides."
            in notes)
    assert "No rule decided; the request is left to approvers." in notes
    assert "No decision yet." in text


def test_dry_run_and_exemptions_are_explained_too(http, submit, add_rule, page):
    add_rule(name="Deny all", outcome="auto_deny", dry_run="true")
    update_settings({"exempt_users": "CORP\\adm-*"}, "root")

    tried = page(submit(application("please")))
    exempt = page(submit(application("please", user="CORP\\adm-jchen")))

    assert "[dry run] Rule 1 'Deny all' matched and would have denied" in notes_section(tried)
    assert "The requester 'CORP\\adm-jchen' is on the exempt list ('CORP\\adm-*')" in notes_section(exempt)


def test_a_required_second_approver_is_explained(http, submit, add_rule, page, client):
    add_rule(name="Two for servers", outcome="two_approvers")

    text = page(submit(application("please")))

    assert ("Rule 1 'Two for servers' matched: two different approvers, neither of them the requester, must approve."
            in notes_section(text))
