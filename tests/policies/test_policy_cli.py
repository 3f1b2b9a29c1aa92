"""`jitbroker policy …` and `jitbroker itsm …`: every subcommand's output, its effect, and its refusals."""
import re

import requests
import responses

from app.audit.models import AuditEntry
from app.itsm.models import ItsmConnection
from app.policies import bypass
from app.policies.models import BypassCode, PolicyRule, PolicySettings

SN = "https://corp.service-now.com"
SN_ADD = ["itsm", "add", "corp", "servicenow", f"base_url={SN}", "auth_method=basic", "username=svc-jit",
          "secret=sn-password"]


def names(runner):
    return [line.split("\t")[2] for line in runner.invoke(args=["policy", "list"]).output.splitlines()
            if line[:1].isdigit()]


def invoke(runner, *args):
    return runner.invoke(args=list(args))


def audited(action):
    return list(AuditEntry.select().where(AuditEntry.action == action).order_by(AuditEntry.id))


def refused(result, message, exit_code=1):
    assert result.exit_code == exit_code, result.output
    assert message in result.output, result.output


# --- policy list / add ---------------------------------------------------------------------


def test_list_without_rules_says_every_request_goes_to_approvers(runner):
    result = invoke(runner, "policy", "list")

    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "No policy rules: every request is left to approvers.",
        "global dry run: off; exempt users: none; system identity: policy-engine",
    ]


def test_add_and_list_rules_in_order(runner):
    first = invoke(runner, "policy", "add", "Deny installers", "auto_deny", "kind=application",
                   "application_group=Installers*", "deny_reason=Use the catalogue")
    second = invoke(runner, "policy", "add", "Exempt admins", "exempt", "workstyle=Admins", "--position", "1")

    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    rule = PolicyRule.get(PolicyRule.name == "Exempt admins")
    assert second.output.strip() == f"Added rule #{rule.id} at position 1: Exempt admins"
    listing = invoke(runner, "policy", "list").output
    assert names(runner) == ["Exempt admins", "Deny installers"]
    assert f"1.\t#{rule.id}\tExempt admins\texempt\tactive\tworkstyle=Admins" in listing
    assert "kind=application application_group=Installers*" in listing
    assert "global dry run: off; exempt users: none; system identity: policy-engine" in listing
    assert len(audited("policy_rule_create")) == 2
    assert PolicyRule.get(PolicyRule.name == "Deny installers").deny_reason == "Use the catalogue"


def test_a_rule_without_matchers_is_listed_as_matching_every_request(runner):
    invoke(runner, "policy", "add", "Everything", "two_approvers")

    assert "\ttwo_approvers\tactive\t(every request)" in invoke(runner, "policy", "list").output


def test_a_bad_rule_is_refused_with_the_reason(runner):
    result = invoke(runner, "policy", "add", "Broken", "auto_approve", "max_duration_minutes=2000",
                    "ticket_source=nowhere")

    refused(result, "max_duration_minutes: Enter a number between 5 and 1440")
    assert "'nowhere' is not 'any', 'broker' or the name of an ITSM connection" in result.output
    assert PolicyRule.select().count() == 0


# Each bad input and what the command says about it; one app for all of them keeps the suite fast.
BAD_RULES = [
    (["Bad", "approve"], "'approve' is not one of 'require_ticket', 'auto_approve'", 2),
    (["Bad", "auto_deny", "kind"], "'kind' is not key=value", 1),
    (["Bad", "auto_deny", "colour=red"], "colour: unknown field; fields are name, enabled", 1),
    (["Bad", "auto_deny", "kind=server"], "kind: choose any, application, admin", 1),
    (["Bad", "auto_deny", "enabled=maybe"], "enabled: use true or false", 1),
    (["Bad", "require_ticket", "reference_pattern=regex"], "custom_regex: required with the regex pattern", 1),
    (["Bad", "require_ticket", "reference_pattern=regex", "custom_regex=(OPS-"], "custom_regex: does not compile", 1),
    (["", "auto_deny"], "name: required", 1),
    (["Bad", "auto_deny", "--position", "first"], "Invalid value for '--position'", 2),
]


def test_add_refuses_bad_input_and_stores_nothing(runner):
    for args, message, exit_code in BAD_RULES:
        refused(invoke(runner, "policy", "add", *args), message, exit_code)

    assert PolicyRule.select().count() == 0
    assert audited("policy_rule_create") == []


def test_a_rule_may_name_an_itsm_connection_as_its_ticket_source(runner):
    invoke(runner, *SN_ADD)

    result = invoke(runner, "policy", "add", "Changes", "auto_approve", "ticket_source=corp")

    assert result.exit_code == 0, result.output
    assert PolicyRule.get().ticket_source == "corp"


# --- policy set / move / remove --------------------------------------------------------------


def test_set_move_and_remove(runner):
    for name in ("A", "B", "C"):
        invoke(runner, "policy", "add", name, "exempt")
    rule_c = PolicyRule.get(PolicyRule.name == "C")
    rule_a = PolicyRule.get(PolicyRule.name == "A")

    changed = invoke(runner, "policy", "set", str(rule_c.id), "user=CORP\\adm-*", "enabled=false")
    moved = invoke(runner, "policy", "move", str(rule_c.id), "1")
    removed = invoke(runner, "policy", "remove", str(rule_a.id))

    assert changed.output.strip() == f"Updated rule #{rule_c.id}: C"
    assert moved.output.strip() == f"Rule #{rule_c.id} is now at position 1."
    assert removed.output.strip() == f"Removed rule #{rule_a.id}: A"
    assert names(runner) == ["C", "B"]
    assert [rule.position for rule in PolicyRule.ordered()] == [1, 2]
    rule_c = PolicyRule.get_by_id(rule_c.id)
    assert (rule_c.user, rule_c.enabled, rule_c.position) == ("CORP\\adm-*", False, 1)
    assert "disabled" in invoke(runner, "policy", "list").output
    [update] = audited("policy_rule_update")
    assert update.detail == {"changed": {"user": "CORP\\adm-*", "enabled": False}}
    assert audited("policy_rule_move")[0].detail == {"from": 3, "to": 1}
    assert audited("policy_rule_delete")[0].detail == {"name": "A"}


def test_set_refuses_bad_values_and_changes_nothing(runner):
    invoke(runner, "policy", "add", "A", "auto_approve")
    rule = PolicyRule.get()

    bad_value = invoke(runner, "policy", "set", str(rule.id), "check_window=maybe", "max_duration_minutes=30")
    bad_pair = invoke(runner, "policy", "set", str(rule.id), "check_window")
    no_values = invoke(runner, "policy", "set", str(rule.id))
    inconsistent = invoke(runner, "policy", "set", str(rule.id), "reference_pattern=regex")

    refused(bad_value, "check_window: use true or false")
    refused(bad_pair, "'check_window' is not key=value")
    refused(no_values, "Missing argument 'SETTINGS...'", exit_code=2)
    refused(inconsistent, "custom_regex: required with the regex pattern")
    after = PolicyRule.get_by_id(rule.id)
    assert (after.check_window, after.max_duration_minutes, after.reference_pattern) == (True, 60, "servicenow")
    assert audited("policy_rule_update") == []


def test_an_unknown_rule_is_named_in_the_error(runner):
    for command in (["set", "999", "enabled=false"], ["move", "999", "1"], ["remove", "999"], ["dry-run", "on", "999"]):
        refused(invoke(runner, "policy", *command), "No policy rule 999")


def test_move_clamps_to_the_end_and_refuses_position_zero(runner):
    for name in ("A", "B", "C"):
        invoke(runner, "policy", "add", name, "exempt")
    rule_a = PolicyRule.get(PolicyRule.name == "A")

    far = invoke(runner, "policy", "move", str(rule_a.id), "40")
    zero = invoke(runner, "policy", "move", str(rule_a.id), "0")

    assert far.output.strip() == f"Rule #{rule_a.id} is now at position 3."
    assert names(runner) == ["B", "C", "A"]
    refused(zero, "Invalid value for 'POSITION'", exit_code=2)


# --- policy dry-run / settings ---------------------------------------------------------------


def test_dry_run_on_and_off_for_a_rule_and_for_all(runner):
    invoke(runner, "policy", "add", "A", "auto_deny")
    rule = PolicyRule.get()

    on = invoke(runner, "policy", "dry-run", "on", str(rule.id))
    assert on.output.strip() == f"Dry run is on for rule #{rule.id}: A"
    assert PolicyRule.get_by_id(rule.id).dry_run is True
    assert "\tdry-run\t" in invoke(runner, "policy", "list").output
    invoke(runner, "policy", "dry-run", "off", str(rule.id))
    assert PolicyRule.get_by_id(rule.id).dry_run is False

    result = invoke(runner, "policy", "dry-run", "on")
    assert result.output.strip() == "Global dry run is on."
    assert PolicySettings.current().dry_run is True
    assert "global dry run: on" in invoke(runner, "policy", "list").output
    assert invoke(runner, "policy", "dry-run", "off").output.strip() == "Global dry run is off."
    assert PolicySettings.current().dry_run is False
    assert audited("policy_settings_update")[-1].detail == {"dry_run": False}


def test_dry_run_takes_only_on_or_off(runner):
    refused(invoke(runner, "policy", "dry-run", "yes"), "Invalid value for '{on|off}'", exit_code=2)


def test_settings_show_without_arguments(runner):
    result = invoke(runner, "policy", "settings")

    assert result.output.splitlines() == ["dry_run = false", "exempt_users = ", "system_account = policy-engine"]


def test_settings_set_exempt_users_and_the_system_identity(runner):
    result = invoke(runner, "policy", "settings", "exempt_users=CORP\\adm-*,svc-backup", "system_account=jit-robot")

    assert result.exit_code == 0
    assert "exempt_users = CORP\\adm-*, svc-backup" in result.output
    assert "system_account = jit-robot" in result.output
    assert PolicySettings.current().exempt_patterns == ["CORP\\adm-*", "svc-backup"]
    assert "exempt users: CORP\\adm-*, svc-backup; system identity: jit-robot" in invoke(
        runner, "policy", "list").output


BAD_SETTINGS = [
    ("system_account=policy engine", "system_account: a user name without spaces or ':'"),
    ("system_account=", "system_account: required"),
    ("dry_run=perhaps", "dry_run: use true or false"),
    ("colour=red", "colour: unknown setting; settings are dry_run, exempt_users, system_account"),
    ("dry_run", "'dry_run' is not key=value"),
]


def test_settings_refuse_bad_input(runner):
    for setting, message in BAD_SETTINGS:
        refused(invoke(runner, "policy", "settings", setting), message)

    assert PolicySettings.current().system_account == "policy-engine"
    assert audited("policy_settings_update") == []


# --- policy bypass issue / list / revoke -----------------------------------------------------


def issued_code(output):
    return re.search(r"BYPASS-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", output).group(0)


def test_bypass_issue_shows_the_code_once_and_stores_its_hash(runner):
    result = invoke(runner, "policy", "bypass", "issue", "--label", "ServiceNow outage", "--valid-hours", "8")

    assert result.exit_code == 0, result.output
    code = issued_code(result.output)
    record = BypassCode.get()
    assert re.fullmatch(rf"Bypass code {code} \(single use, expires \d{{4}}-\d\d-\d\d \d\d:\d\d UTC\); "
                        rf"id {record.sys_id}\n", result.output)
    assert record.code_hash == bypass.code_hash(code) and code not in record.code_hash
    assert (record.single_use, record.label, record.issued_by) == (True, "ServiceNow outage", record.issued_by)
    assert record.issued_by.startswith("cli:")
    assert audited("bypass_code_issue")[0].object_id == record.sys_id
    assert code not in invoke(runner, "policy", "bypass", "list").output


def test_bypass_issue_a_reusable_code_needs_a_lifetime(runner):
    reusable = invoke(runner, "policy", "bypass", "issue", "--reusable", "--valid-hours", "2")
    forever = invoke(runner, "policy", "bypass", "issue", "--reusable")
    zero = invoke(runner, "policy", "bypass", "issue", "--valid-hours", "0")
    too_long = invoke(runner, "policy", "bypass", "issue", "--valid-hours", "721")
    not_a_number = invoke(runner, "policy", "bypass", "issue", "--valid-hours", "soon")

    assert "(reusable, expires " in reusable.output
    refused(forever, "A bypass code must be single-use, time-limited, or both")
    refused(zero, "A bypass code is valid for more than 0 and at most 720 hours")
    refused(too_long, "A bypass code is valid for more than 0 and at most 720 hours")
    refused(not_a_number, "Invalid value for '--valid-hours'", exit_code=2)
    assert BypassCode.select().count() == 1


def test_bypass_list_shows_active_codes_and_all_with_a_flag(runner):
    assert invoke(runner, "policy", "bypass", "list").output.strip() == "No bypass codes."
    active, _ = bypass.issue_code("root", "spare", single_use=True)
    revoked, _ = bypass.issue_code("root", "old", single_use=False, valid_hours=1)
    bypass.revoke_code(revoked, "root")

    listed = invoke(runner, "policy", "bypass", "list").output
    everything = invoke(runner, "policy", "bypass", "list", "--all").output

    assert listed.splitlines() == [f"{active.sys_id}\t…{active.hint}\tactive\tsingle use\tno expiry\tuses=0\tspare"]
    assert f"{revoked.sys_id}\t…{revoked.hint}\trevoked\treusable\texpires " in everything
    assert f"…{active.hint}\tactive" in everything


def test_bypass_revoke_by_id_once(runner):
    record, _code = bypass.issue_code("root", "spare", single_use=True)

    revoked = invoke(runner, "policy", "bypass", "revoke", record.sys_id)
    again = invoke(runner, "policy", "bypass", "revoke", record.sys_id)
    unknown = invoke(runner, "policy", "bypass", "revoke", "nope")

    assert revoked.exit_code == 0 and revoked.output.strip() == f"Revoked bypass code …{record.hint}."
    assert bypass.status(BypassCode.get_by_id(record.id)) == "revoked"
    refused(again, f"Bypass code …{record.hint} is already revoked")
    refused(unknown, "No bypass code nope")
    assert len(audited("bypass_code_revoke")) == 1


# --- itsm add / list / show / set / remove ----------------------------------------------------


def test_itsm_list_without_connections(runner):
    assert invoke(runner, "itsm", "list").output.strip() == "No ITSM connections."


def test_itsm_add_list_and_show_never_print_the_secret(runner):
    added = invoke(runner, *SN_ADD)
    listed = invoke(runner, "itsm", "list")
    shown = invoke(runner, "itsm", "show", "corp")

    assert added.output.strip() == ("Added ServiceNow connection 'corp'. Check it with: jitbroker itsm validate corp")
    assert listed.output.strip() == f"corp\tservicenow\tenabled\t{SN}\tnot validated"
    assert "secret = ********" in shown.output and "client_secret = \n" in shown.output
    assert "username = svc-jit" in shown.output and "auth_method = basic" in shown.output
    assert "sn-password" not in added.output + shown.output + listed.output
    assert ItsmConnection.get().secret == "sn-password"


BAD_CONNECTIONS = [
    (["corp", "remedy"], "'remedy' is not one of 'servicenow', 'jira'", 2),
    (["corp", "servicenow", "base_url=http://corp.service-now.com"], "base_url: use https://", 1),
    (["corp", "servicenow", "auth_method=oauth2"], "auth_method: for ServiceNow choose basic, oauth", 1),
    (["broker", "servicenow"], "name: 1–64 letters", 1),
    (["corp", "servicenow", "timeout_seconds=90"], "timeout_seconds: between 1 and 60 seconds", 1),
    (["corp", "servicenow", "password=x"], "password: unknown field", 1),
    (["corp", "servicenow", "base_url"], "'base_url' is not key=value", 1),
]


def test_itsm_add_refuses_bad_input(runner):
    for args, message, exit_code in BAD_CONNECTIONS:
        refused(invoke(runner, "itsm", "add", *args), message, exit_code)

    assert ItsmConnection.select().count() == 0


def test_itsm_add_refuses_a_name_in_use(runner):
    invoke(runner, *SN_ADD)

    refused(invoke(runner, *SN_ADD), "An ITSM connection named 'corp' already exists")
    assert ItsmConnection.select().count() == 1


def test_itsm_set_changes_fields_keeps_a_blank_secret_and_merges_options(runner):
    invoke(runner, "itsm", "add", "jsm", "jira", "base_url=https://acme.atlassian.net", "username=a@b.c",
           "secret=tok", "option.start_field=customfield_10058")

    changed = invoke(runner, "itsm", "set", "jsm", "option.end_field=customfield_10059", "enabled=false", "secret=")

    assert changed.output.strip() == "Updated enabled, options, secret of 'jsm'."
    connection = ItsmConnection.get()
    assert connection.options == {"start_field": "customfield_10058", "end_field": "customfield_10059"}
    assert (connection.enabled, connection.secret, connection.auth_method) == (False, "tok", "api_token")
    assert "jsm\tjira\tdisabled" in invoke(runner, "itsm", "list").output
    assert audited("itsm_connection_update")[0].detail == {"fields": ["enabled", "options"], "internal": False}


def test_itsm_set_refuses_bad_input_and_unknown_connections(runner):
    invoke(runner, *SN_ADD)

    refused(invoke(runner, "itsm", "set", "corp", "auth_method=api_token"),
            "auth_method: for ServiceNow choose basic, oauth")
    refused(invoke(runner, "itsm", "set", "corp", "timeout_seconds=soon"), "timeout_seconds: a whole number")
    refused(invoke(runner, "itsm", "set", "nope", "enabled=false"), "No ITSM connection named 'nope'")
    refused(invoke(runner, "itsm", "show", "nope"), "No ITSM connection named 'nope'")
    assert ItsmConnection.get().auth_method == "basic"


def test_renaming_a_connection_renames_it_in_the_rules_that_use_it(runner):
    invoke(runner, *SN_ADD)
    invoke(runner, "policy", "add", "Changes", "auto_approve", "ticket_source=corp")

    renamed = invoke(runner, "itsm", "set", "corp", "name=corp-prod")

    assert renamed.exit_code == 0, renamed.output
    assert PolicyRule.get().ticket_source == "corp-prod"


def test_itsm_remove_refuses_a_connection_a_rule_uses(runner):
    invoke(runner, *SN_ADD)
    invoke(runner, "policy", "add", "Changes", "auto_approve", "ticket_source=corp")
    rule = PolicyRule.get()

    in_use = invoke(runner, "itsm", "remove", "corp")
    invoke(runner, "policy", "set", str(rule.id), "ticket_source=broker")
    removed = invoke(runner, "itsm", "remove", "corp")

    refused(in_use, f"ITSM connection 'corp' is the ticket source of rule #{rule.id} 'Changes': point those rules "
                    "elsewhere first")
    assert removed.output.strip() == "Removed ITSM connection 'corp'."
    assert ItsmConnection.select().count() == 0
    assert audited("itsm_connection_delete")[0].object_id == "corp"
    refused(invoke(runner, "itsm", "remove", "corp"), "No ITSM connection named 'corp'")


# --- itsm validate / lookup ------------------------------------------------------------------


def test_itsm_validate_reports_success_and_failure_and_keeps_the_outcome(runner):
    invoke(runner, *SN_ADD)
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": []})
        ok = invoke(runner, "itsm", "validate", "corp")
        listed = invoke(runner, "itsm", "list").output
        mock.replace("GET", f"{SN}/api/now/table/change_request", status=401, json={})
        failed = invoke(runner, "itsm", "validate", "corp")

    assert ok.output.strip() == "Settings OK: ServiceNow 'corp' answered (Table API readable)."
    assert listed.strip().endswith("Settings OK: ServiceNow 'corp' answered (Table API readable).")
    refused(failed, "Validation failed: ServiceNow 'corp' refused the credentials for the settings check (HTTP 401)")
    assert ItsmConnection.get().last_validation.startswith("Validation failed")
    assert "sn-password" not in ok.output + failed.output


def test_itsm_validate_names_missing_settings_without_calling_out(runner):
    invoke(runner, "itsm", "add", "corp", "servicenow", f"base_url={SN}", "username=svc-jit")

    with responses.RequestsMock():  # any HTTP call would fail the test
        result = invoke(runner, "itsm", "validate", "corp")

    refused(result, "Validation failed: ServiceNow 'corp' is missing: Password")
    refused(invoke(runner, "itsm", "validate", "nope"), "No ITSM connection named 'nope'")


def test_itsm_lookup_prints_what_the_checks_would_see(runner):
    invoke(runner, *SN_ADD)
    record = {"number": {"value": "CHG0000024", "display_value": "CHG0000024"},
              "state": {"value": "-2", "display_value": "Scheduled"}, "approval": {"value": "approved"},
              "start_date": {"value": "2026-11-23 10:00:00"}, "end_date": {"value": "2026-11-23 12:00:00"},
              "requested_by.user_name": {"value": "beth.anglin"}}
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": [record]})
        result = invoke(runner, "itsm", "lookup", "corp", "CHG0000024")

    assert result.output.splitlines() == [
        "number = CHG0000024", "state = Scheduled", "approval = approved", "window_start = 2026-11-23 10:00:00",
        "window_end = 2026-11-23 12:00:00", "requester = beth.anglin",
    ]


def test_itsm_lookup_says_when_a_ticket_is_missing_or_the_itsm_unreachable(runner):
    invoke(runner, *SN_ADD)
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": []})
        missing = invoke(runner, "itsm", "lookup", "corp", "CHG0000099")
        mock.replace("GET", f"{SN}/api/now/table/change_request", body=requests.ConnectionError("refused"))
        unreachable = invoke(runner, "itsm", "lookup", "corp", "CHG0000099")

    refused(missing, "CHG0000099 was not found in 'corp'")
    refused(unreachable, "ServiceNow 'corp' could not be reached at corp.service-now.com for the lookup of CHG0000099")
