"""`jitbroker policy …`: rules added, listed, changed, moved, dry-run and removed from the command line."""
from app.audit.models import AuditEntry
from app.policies.models import PolicyRule, PolicySettings


def names(runner):
    return [line.split("\t")[2] for line in runner.invoke(args=["policy", "list"]).output.splitlines()
            if line[:1].isdigit()]


def test_add_and_list_rules_in_order(runner):
    first = runner.invoke(args=["policy", "add", "Deny installers", "auto_deny", "kind=application",
                                "application_group=Installers*", "deny_reason=Use the catalogue"])
    second = runner.invoke(args=["policy", "add", "Exempt admins", "exempt", "workstyle=Admins", "--position", "1"])

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    listing = runner.invoke(args=["policy", "list"]).output
    assert names(runner) == ["Exempt admins", "Deny installers"]
    assert "kind=application application_group=Installers*" in listing
    assert "global dry run: off; exempt users: none; system identity: policy-engine" in listing
    assert AuditEntry.select().where(AuditEntry.action == "policy_rule_create").count() == 2


def test_a_bad_rule_is_refused_with_the_reason(runner):
    result = runner.invoke(args=["policy", "add", "Broken", "auto_approve", "max_duration_minutes=2000",
                                 "ticket_source=nowhere"])

    assert result.exit_code == 1
    assert "max_duration_minutes: Enter a number between 5 and 1440" in result.output
    assert "'nowhere' is not 'any', 'broker' or the name of an ITSM connection" in result.output
    assert PolicyRule.select().count() == 0


def test_set_move_and_remove(runner):
    for name in ("A", "B", "C"):
        runner.invoke(args=["policy", "add", name, "exempt"])
    rule_c = PolicyRule.get(PolicyRule.name == "C")

    changed = runner.invoke(args=["policy", "set", str(rule_c.id), "user=CORP\\adm-*", "enabled=false"])
    moved = runner.invoke(args=["policy", "move", str(rule_c.id), "1"])
    removed = runner.invoke(args=["policy", "remove", str(PolicyRule.get(PolicyRule.name == "A").id)])

    assert changed.exit_code == moved.exit_code == removed.exit_code == 0
    assert names(runner) == ["C", "B"]
    rule_c = PolicyRule.get_by_id(rule_c.id)
    assert (rule_c.user, rule_c.enabled, rule_c.position) == ("CORP\\adm-*", False, 1)
    assert runner.invoke(args=["policy", "remove", "999"]).exit_code == 1


def test_dry_run_on_and_off_for_a_rule_and_for_all(runner):
    runner.invoke(args=["policy", "add", "A", "auto_deny"])
    rule = PolicyRule.get()

    runner.invoke(args=["policy", "dry-run", "on", str(rule.id)])
    assert PolicyRule.get_by_id(rule.id).dry_run is True
    assert "dry-run" in runner.invoke(args=["policy", "list"]).output
    runner.invoke(args=["policy", "dry-run", "off", str(rule.id)])
    assert PolicyRule.get_by_id(rule.id).dry_run is False

    result = runner.invoke(args=["policy", "dry-run", "on"])
    assert result.output.strip() == "Global dry run is on."
    assert PolicySettings.current().dry_run is True


def test_settings_show_and_set_exempt_users(runner):
    result = runner.invoke(args=["policy", "settings", "exempt_users=CORP\\adm-*,svc-backup"])

    assert result.exit_code == 0
    assert "exempt_users = CORP\\adm-*, svc-backup" in result.output
    assert PolicySettings.current().exempt_patterns == ["CORP\\adm-*", "svc-backup"]
