"""Each action an auditor asks about leaves one entry: who, from where, on what, and what changed."""
from app.audit import service as audit
from app.configuration import FIELDS, MASK, update_configuration, versioned_configuration
from app.models import Account, Configuration
from tests import factories
from tests.conftest import basic_auth
from tests.webclient import CONFIRMED

LOOPBACK = "127.0.0.1"


def test_sign_in_is_recorded_with_the_account_and_source_address(web, approver, audit_entries):
    assert web.sign_in(approver.username).status_code == 302

    [entry] = audit_entries(audit.SIGN_IN)
    assert (entry.actor, entry.object_type, entry.object_id) == ("jchen", "account", "jchen")
    assert entry.source_address == LOOPBACK


def test_failed_sign_in_is_recorded_with_the_name_tried_and_the_reason(web, approver, audit_entries):
    assert web.sign_in(approver.username, password="not-the-password").status_code == 401
    assert web.sign_in("nobody").status_code == 401

    wrong_password, unknown = audit_entries(audit.SIGN_IN_FAILED)
    assert (wrong_password.actor, wrong_password.detail) == ("jchen", {"reason": "wrong password"})
    assert (unknown.actor, unknown.detail) == ("nobody", {"reason": "unknown user name"})
    assert audit_entries(audit.SIGN_IN) == []


def test_api_accounts_cannot_sign_in_and_the_refusal_is_recorded(web, api_account, audit_entries):
    assert web.sign_in(api_account.username).status_code == 401

    [entry] = audit_entries(audit.SIGN_IN_FAILED)
    assert entry.detail == {"reason": "the 'api' role may not sign in"}


def test_sign_out_is_recorded(web, approver, audit_entries):
    web.sign_in(approver.username)
    assert web.post("/sign-out").status_code == 302

    [entry] = audit_entries(audit.SIGN_OUT)
    assert entry.actor == "jchen"


def test_creating_a_user_on_the_users_page_is_recorded(as_admin, audit_entries):
    assert as_admin.post("/admin/users", {"username": "mpatel", "role": "user"}).status_code == 201

    [entry] = audit_entries(audit.USER_CREATE)
    assert (entry.actor, entry.object_id, entry.detail) == ("root", "mpatel", {"role": "user"})
    assert entry.source_address == LOOPBACK


def test_a_role_change_is_recorded_old_to_new(as_admin, approver, audit_entries):
    as_admin.post(f"/admin/users/{approver.id}/role", {"role": "admin"})

    [entry] = audit_entries(audit.USER_ROLE_CHANGE)
    assert (entry.actor, entry.object_id, entry.detail) == ("root", "jchen", {"old": "user", "new": "admin"})


def test_a_password_reset_is_recorded_without_the_password(as_admin, approver, audit_entries):
    page = as_admin.post(f"/admin/users/{approver.id}/password", CONFIRMED).get_data(as_text=True)

    [entry] = audit_entries(audit.USER_PASSWORD_RESET)
    assert (entry.actor, entry.object_id, entry.detail) == ("root", "jchen", {})
    new_password = page.split('class="password">')[1].split("<")[0]
    assert new_password not in str(entry.detail)


def test_deactivating_and_reactivating_are_recorded(as_admin, approver, audit_entries):
    as_admin.post(f"/admin/users/{approver.id}/active", {"active": "false", **CONFIRMED})
    as_admin.post(f"/admin/users/{approver.id}/active", {"active": "true"})

    assert [(e.action, e.object_id) for e in audit_entries() if e.action.startswith("user_")] == [
        (audit.USER_DEACTIVATE, "jchen"), (audit.USER_REACTIVATE, "jchen")]


def test_a_refused_change_leaves_no_entry(as_admin, admin, audit_entries):
    as_admin.post(f"/admin/users/{admin.id}/role", {"role": "user"})

    assert audit_entries(audit.USER_ROLE_CHANGE) == []
    assert Account.by_username("root").role == "admin"


def test_users_commands_are_recorded_as_the_command_line(runner, audit_entries):
    assert runner.invoke(args=["users", "create", "mpatel", "--role", "admin"]).exit_code == 0
    assert runner.invoke(args=["users", "set-password", "mpatel"]).exit_code == 0

    created, reset = audit_entries()
    assert (created.action, created.object_id, created.detail) == (audit.USER_CREATE, "mpatel", {"role": "admin"})
    assert reset.action == audit.USER_PASSWORD_RESET
    assert created.actor.startswith("cli:") and created.source_address == "local"


def test_a_decision_is_recorded_with_its_reason(client, ticket, approver_auth, audit_entries):
    answer = client.post(f"/api/x_bets_pmc_jit/tickets/{ticket.number}/decision", headers=approver_auth,
                         json={"decision": "Approved", "reason": "Needed for the audit", "duration_unit": "hours",
                               "duration_value": 2})
    assert answer.status_code == 202  # EPM is not configured: the decision waits in the outbox

    [entry] = audit_entries(audit.DECISION)
    assert (entry.actor, entry.object_type, entry.object_id) == ("jchen", "ticket", ticket.number)
    assert entry.detail["decision"] == "Approved"
    assert entry.detail["reason"] == "Needed for the audit"
    assert entry.detail["duration"] == "2 hours"
    assert entry.detail["request_id"] == ticket.request_id


def test_a_refused_decision_leaves_no_entry(client, ticket, approver_auth, audit_entries):
    answer = client.post(f"/api/x_bets_pmc_jit/tickets/{ticket.number}/decision", headers=approver_auth,
                         json={"decision": "Denied", "reason": ""})
    assert answer.status_code == 400

    assert audit_entries(audit.DECISION) == []


def test_a_state_change_is_recorded_old_to_new(client, ticket, approver_auth, audit_entries):
    answer = client.patch(f"/api/x_bets_pmc_jit/tickets/{ticket.number}", headers=approver_auth,
                          json={"state": "On Hold"})
    assert answer.status_code == 200

    [entry] = audit_entries(audit.STATE_CHANGE)
    assert (entry.actor, entry.object_id, entry.detail) == ("jchen", ticket.number, {"old": "New", "new": "On Hold"})


def test_auto_close_after_epm_finalizes_is_recorded_as_the_system(deliver, audit_entries):
    update_configuration({"auto_close": "true"})
    body = factories.application_request()
    number = deliver(body).json["result"]["ticket"]
    deliver(factories.application_decision(body["RequestId"]))

    [entry] = audit_entries(audit.STATE_CHANGE)
    assert (entry.actor, entry.object_id) == (audit.SYSTEM_ACTOR, number)
    assert (entry.detail["old"], entry.detail["new"]) == ("New", "Closed")


def test_configuration_changes_are_recorded_old_to_new_with_secrets_masked(runner, audit_entries):
    Configuration.default()
    result = runner.invoke(args=["config", "set", "client_id=broker", "client_secret=s3cret-value",
                                 "ticket_type=sc_task"])
    assert result.exit_code == 0, result.output

    [entry] = audit_entries(audit.CONFIGURATION_CHANGE)
    assert entry.object_id == Configuration.DEFAULT_NAME
    assert entry.detail == {
        "client_id": {"old": "", "new": "broker"},
        "client_secret": {"old": "", "new": MASK},
        "ticket_type": {"old": "incident", "new": "sc_task"},
    }
    assert "s3cret-value" not in entry.entry_hash + str(entry.detail)


def test_configuration_saved_on_the_page_is_recorded_as_the_admin(as_admin, audit_entries):
    update_configuration({"client_secret": "first-secret"})
    record = Configuration.default()
    # The form as the page submits it: every field as stored, checkboxes only when on.
    form = {field.name: getattr(record, field.name) for field in FIELDS if not field.secret}
    form = {name: "true" if value is True else value for name, value in form.items() if value is not False}
    form.update(default_category="Security", client_secret="second-secret",
                configuration_version=str(versioned_configuration().configuration_version))
    assert as_admin.post("/admin/configuration", form).status_code == 302

    entry = audit_entries(audit.CONFIGURATION_CHANGE)[-1]
    assert (entry.actor, entry.source_address) == ("root", LOOPBACK)
    assert entry.detail["default_category"] == {"old": "", "new": "Security"}
    assert entry.detail["client_secret"] == {"old": MASK, "new": MASK}


def test_saving_an_unchanged_configuration_records_nothing(audit_entries):
    update_configuration({"default_category": "Security"})
    update_configuration({"default_category": "Security"})

    assert len(audit_entries(audit.CONFIGURATION_CHANGE)) == 1


def test_every_recorded_action_keeps_the_chain_intact(web, approver, client, ticket, audit_entries):
    web.sign_in(approver.username, password="wrong-password-here")
    web.sign_in(approver.username)
    client.patch(f"/api/x_bets_pmc_jit/tickets/{ticket.number}", headers=basic_auth("jchen", factories.PASSWORD),
                 json={"state": "In Progress"})
    update_configuration({"default_category": "Security"})

    result = audit.verify()
    assert result.intact and result.checked == len(audit_entries()) == 4
