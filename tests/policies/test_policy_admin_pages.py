"""The admin policies page: rules listed in order, created, edited, reordered, dry run, deleted; bypass codes."""
import re

from app.audit.models import AuditEntry
from app.policies.models import BypassCode, PolicyRule, PolicySettings
from tests.webclient import CONFIRMED


def test_only_admins_open_the_policies_page(as_approver):
    assert as_approver.get("/admin/policies").status_code == 403


def test_the_page_lists_rules_in_order_with_their_matchers(as_admin, add_rule):
    add_rule(name="Second", outcome="auto_deny")
    add_rule(name="First", outcome="exempt", publisher="Example*")
    from app.policies.rules import move_rule

    move_rule(PolicyRule.get(PolicyRule.name == "First"), 1, "root")

    page = as_admin.get("/admin/policies").get_data(as_text=True)

    assert page.index("First") < page.index("Second")
    assert "Publisher: <code>Example*</code>" in page


def test_an_admin_creates_a_rule_with_the_form(as_admin):
    response = as_admin.post("/admin/policies/rules/new", {
        "name": "Standard changes", "enabled": "true", "outcome": "auto_approve", "kind": "application",
        "publisher": "Example*", "reference_pattern": "servicenow", "ticket_source": "any", "check_exists": "true",
        "check_state": "true", "check_approved": "true", "check_window": "true", "allowed_states": "Scheduled",
        "max_duration_minutes": "30",
    })

    assert response.status_code == 302
    rule = PolicyRule.get(PolicyRule.name == "Standard changes")
    assert (rule.outcome, rule.publisher, rule.max_duration_minutes) == ("auto_approve", "Example*", 30)
    assert not rule.check_requester and not rule.dry_run
    assert AuditEntry.select().where(AuditEntry.action == "policy_rule_create").count() == 1


def test_the_form_shows_what_is_wrong_and_keeps_the_input(as_admin):
    response = as_admin.post("/admin/policies/rules/new", {
        "name": "Bad", "outcome": "auto_approve", "reference_pattern": "regex", "custom_regex": "(unclosed",
        "max_duration_minutes": "2", "ticket_source": "any",
    })

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "does not compile" in page
    assert "Enter a number between 5 and 1440" in page
    assert 'value="Bad"' in page
    assert PolicyRule.select().count() == 0


def test_an_admin_edits_moves_toggles_dry_run_and_deletes_a_rule(as_admin, add_rule):
    first = add_rule(name="One", outcome="auto_deny")
    second = add_rule(name="Two", outcome="exempt")

    edit = as_admin.post(f"/admin/policies/rules/{first.id}", {
        "name": "One renamed", "enabled": "true", "outcome": "auto_deny", "deny_reason": "No", "ticket_source": "any",
        "reference_pattern": "servicenow", "max_duration_minutes": "60"})
    up = as_admin.post(f"/admin/policies/rules/{second.id}/move", {"direction": "up"})
    dry = as_admin.post(f"/admin/policies/rules/{first.id}/dry-run")

    assert (edit.status_code, up.status_code, dry.status_code) == (302, 302, 302)
    assert [rule.name for rule in PolicyRule.ordered()] == ["Two", "One renamed"]
    assert PolicyRule.get_by_id(first.id).dry_run is True

    assert as_admin.post(f"/admin/policies/rules/{second.id}/delete", CONFIRMED).status_code == 302
    assert [(rule.name, rule.position) for rule in PolicyRule.ordered()] == [("One renamed", 1)]


def test_an_admin_saves_global_dry_run_and_exempt_users(as_admin):
    response = as_admin.post("/admin/policies/settings", {"dry_run": "true", "exempt_users": "CORP\\adm-*",
                                                          "system_account": "policy-engine"})

    assert response.status_code == 302
    settings = PolicySettings.current()
    assert settings.dry_run and settings.exempt_patterns == ["CORP\\adm-*"]


def test_an_issued_bypass_code_is_shown_once_and_stored_only_as_a_hash(as_admin):
    response = as_admin.post("/admin/policies/bypass", {"label": "ITSM outage", "single_use": "true",
                                                        "valid_hours": "4"})

    page = response.get_data(as_text=True)
    code = re.search(r"BYPASS-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", page).group(0)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    record = BypassCode.get()
    assert record.code_hash != code and code not in record.code_hash
    assert record.single_use and record.expires_at is not None
    assert code not in as_admin.get("/admin/policies").get_data(as_text=True)


def test_an_admin_revokes_a_bypass_code(as_admin):
    from app.policies.bypass import issue_code, status

    record, _code = issue_code("root", "spare", True, None)

    assert as_admin.post(f"/admin/policies/bypass/{record.sys_id}/revoke", CONFIRMED).status_code == 302
    assert status(BypassCode.get_by_id(record.id)) == "revoked"


def test_revoking_a_revoked_code_says_so(as_admin):
    from app.policies.bypass import issue_code, revoke_code

    record, _code = issue_code("root", "spare", True, None)
    revoke_code(record, "root")

    answer = as_admin.post(f"/admin/policies/bypass/{record.sys_id}/revoke", CONFIRMED, follow_redirects=True)

    assert f"Bypass code …{record.hint} is already revoked" in answer.get_data(as_text=True)
    assert AuditEntry.select().where(AuditEntry.action == "bypass_code_revoke").count() == 1
