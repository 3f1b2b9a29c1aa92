"""`jitbroker users set`: an approver's e-mail address and assignment groups."""
from app.audit.models import AuditEntry
from app.models import Account, Task
from app.notify.recipients import approvers_for


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
