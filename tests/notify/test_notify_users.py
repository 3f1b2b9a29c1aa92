"""An approver's e-mail address and assignment groups: `jitbroker users set` and the users page."""
import pytest

from app.audit.models import AuditEntry
from app.models import Account, Task
from app.notify.recipients import approvers_for
from tests.webclient import WebClient


def test_users_set_stores_email_and_groups(approver, runner):
    result = runner.invoke(args=["users", "set", approver.username, "--email", "jchen@example.com",
                                 "--groups", " Endpoint Team,Desk, endpoint team ,"])
    assert result.exit_code == 0, result.output
    account = Account.by_username(approver.username)
    assert account.email == "jchen@example.com" and account.groups == "Endpoint Team, Desk"
    entry = AuditEntry.get(AuditEntry.action == "user_notification_settings")
    assert entry.object_id == approver.username and entry.detail["email"]["new"] == "jchen@example.com"


def test_users_set_can_clear_and_refuses_a_bad_address(approver, runner):
    runner.invoke(args=["users", "set", approver.username, "--email", "jchen@example.com"])
    bad = runner.invoke(args=["users", "set", approver.username, "--email", "jchen at example"])
    assert bad.exit_code == 2 and "not an e-mail address" in bad.output
    assert runner.invoke(args=["users", "set", approver.username, "--email", ""]).exit_code == 0
    assert Account.by_username(approver.username).email == ""


def test_users_set_names_a_missing_account(app, runner):
    result = runner.invoke(args=["users", "set", "ghost", "--groups", "Desk"])
    assert result.exit_code == 1 and "No account named 'ghost'" in result.output


def test_group_membership_decides_who_is_told(app, approver, runner, make_ticket):
    runner.invoke(args=["users", "set", approver.username, "--email", "jchen@example.com", "--groups", "Desk"])
    task = make_ticket()
    Task.update(assignment_group="desk").where(Task.id == task.id).execute()
    assert [a.username for a in approvers_for(Task.get_by_id(task.id))] == [approver.username]
    Task.update(assignment_group="Network").where(Task.id == task.id).execute()
    assert approvers_for(Task.get_by_id(task.id)) == []


@pytest.fixture
def as_admin(client, admin):
    web = WebClient(client)
    assert web.sign_in(admin.username).status_code == 302
    return web


def notifications_path(account):
    return f"/admin/users/{account.id}/notifications"


def test_the_users_page_sets_email_and_groups_and_audits_it(as_admin, admin, approver):
    answer = as_admin.post(notifications_path(approver), {"email": " jchen@example.com ",
                                                          "groups": "Endpoint Team, desk,endpoint team"})
    assert answer.status_code == 302

    account = Account.by_username(approver.username)
    assert (account.email, account.groups) == ("jchen@example.com", "Endpoint Team, desk")
    entry = AuditEntry.get(AuditEntry.action == "user_notification_settings")
    assert (entry.actor, entry.object_id, entry.source_address) == (admin.username, approver.username, "127.0.0.1")
    assert entry.detail == {"email": {"old": "", "new": "jchen@example.com"},
                            "groups": {"old": "", "new": "Endpoint Team, desk"}}
    page = as_admin.get("/admin/users").get_data(as_text=True)
    assert f"{approver.username}: e-mail and groups saved." in page
    assert 'value="jchen@example.com"' in page and 'value="Endpoint Team, desk"' in page


def test_the_users_page_refuses_a_bad_address_and_changes_nothing(as_admin, approver):
    answer = as_admin.post(notifications_path(approver), {"email": "jchen at example", "groups": "Desk"})
    assert answer.status_code == 400
    assert "is not an e-mail address" in answer.get_data(as_text=True)
    assert (Account.by_username(approver.username).email, Account.by_username(approver.username).groups) == ("", "")
    assert not AuditEntry.select().where(AuditEntry.action == "user_notification_settings").exists()


def test_saving_unchanged_settings_records_nothing(as_admin, approver):
    as_admin.post(notifications_path(approver), {"email": "jchen@example.com", "groups": ""})
    as_admin.post(notifications_path(approver), {"email": "jchen@example.com", "groups": ""})
    assert AuditEntry.select().where(AuditEntry.action == "user_notification_settings").count() == 1


def test_setting_email_and_groups_needs_the_form_token_and_an_admin(as_admin, web_approver, approver):
    without_token = as_admin.client.post(notifications_path(approver), data={"email": "x@example.com"})
    assert without_token.status_code == 400
    assert web_approver.post(notifications_path(approver), {"email": "x@example.com"}).status_code == 403
    assert Account.by_username(approver.username).email == ""


@pytest.fixture
def web_approver(app, approver):
    web = WebClient(app.test_client())
    assert web.sign_in(approver.username).status_code == 302
    return web
