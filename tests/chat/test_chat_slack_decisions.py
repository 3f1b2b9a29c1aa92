"""Deciding from Slack: the button opens the modal, the modal records the decision through the same service as
the browser (its rules, messages, refusals, two-person rule and audit), or says why nothing was recorded."""
import pytest

from app import contract
from app.audit.models import AuditEntry
from app.chat import outbox
from app.decisions import delivery
from app.decisions.approvals import MSG_SAME_APPROVER
from app.models import Account, Decision, Task, WorkNote
from tests import factories
from tests.chat.conftest import button, submission

pytestmark = pytest.mark.usefixtures("posted")


def _open(interact, fake_slack, user_id, action_id="approve"):
    answer = interact(button(fake_slack, user_id, action_id))
    assert answer.status_code == 200
    return fake_slack.views[-1]


def _ephemeral(fake_slack):
    return [call.arguments["text"] for call in fake_slack.calls_to("chat.postEphemeral")]


@pytest.mark.parametrize("unit, value, sent", [("once", None, "Once"), ("minutes", "90", "5400"),
                                               ("hours", "3", "10800")])
def test_approve_through_the_modal_with_each_duration_kind(posted, interact, fake_slack, slack_approver, unit,
                                                           value, sent):
    view = _open(interact, fake_slack, "U0JCHEN")
    assert view["title"]["text"] == f"Approve {posted.number}"
    answer = interact(submission(view, "U0JCHEN", "Needed for the release", unit, value))
    assert answer.status_code == 200
    assert answer.json["response_action"] == "update"
    decision = Decision.get()
    assert (decision.decision, decision.decided_by, decision.duration_unit) == ("Approved", "jchen", unit)
    assert decision.duration_sent == sent
    assert decision.status == contract.DELIVERY_PENDING  # in the outbox: Slack's answer never waits for EPM
    entry = AuditEntry.select().where(AuditEntry.action == "decision").get()
    assert entry.actor == "jchen" and entry.detail["via"] == "Slack"
    assert WorkNote.select().where(WorkNote.text.startswith("Approved by jchen via Slack")).exists()


def test_deny_needs_only_a_reason(posted, interact, fake_slack, slack_approver):
    view = _open(interact, fake_slack, "U0JCHEN", "deny")
    assert [block["block_id"] for block in view["blocks"] if block["type"] == "input"] == ["reason"]
    interact(submission(view, "U0JCHEN", "Not on the list"))
    assert Decision.get().decision == "Denied"


@pytest.mark.parametrize("reason, unit, value, errors", [
    ("", "once", None, {"reason": contract.MSG_REASON_REQUIRED}),
    ("why", "minutes", "4", {"duration_value": contract.MSG_MINUTES_RANGE}),
    ("why", "minutes", "1441", {"duration_value": contract.MSG_MINUTES_RANGE}),
    ("why", "minutes", None, {"duration_value": contract.MSG_MINUTES_RANGE}),
    ("why", "hours", "0", {"duration_value": contract.MSG_HOURS_RANGE}),
    ("why", "hours", "25", {"duration_value": contract.MSG_HOURS_RANGE}),
    ("why", "hours", "1.5", {"duration_value": contract.MSG_HOURS_RANGE}),
    ("", "hours", "99", {"reason": contract.MSG_REASON_REQUIRED, "duration_value": contract.MSG_HOURS_RANGE}),
    ("why", None, None, {"duration_unit": "Choose Once, Minutes or Hours"}),
])
def test_every_broken_rule_is_shown_beside_its_field_and_nothing_is_recorded(posted, interact, fake_slack,
                                                                             slack_approver, reason, unit, value,
                                                                             errors):
    view = _open(interact, fake_slack, "U0JCHEN")
    answer = interact(submission(view, "U0JCHEN", reason, unit, value))
    assert answer.status_code == 200
    assert answer.json == {"response_action": "errors", "errors": errors}
    assert Decision.select().count() == 0


def test_an_unmapped_slack_user_is_told_and_nothing_is_recorded(posted, interact, fake_slack, approver):
    fake_slack.add_user("U0STRANGER", "stranger@elsewhere.example")
    interact(button(fake_slack, "U0STRANGER", "approve"))
    assert fake_slack.views == []
    assert "not linked to a JIT Broker account" in _ephemeral(fake_slack)[0]
    assert Decision.select().count() == 0


def test_a_modal_submitted_by_an_unmapped_user_records_nothing(posted, interact, fake_slack, slack_approver):
    view = _open(interact, fake_slack, "U0JCHEN")
    fake_slack.add_user("U0STRANGER", "")
    answer = interact(submission(view, "U0STRANGER", "mine now", "once"))
    assert "not linked" in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 0


def test_a_reader_is_told_their_role_may_not_decide(posted, interact, fake_slack):
    reader = factories.account("auditor", "reader")
    Account.update(email="auditor@corp.example").where(Account.id == reader.id).execute()
    fake_slack.add_user("U0AUDIT", "auditor@corp.example")
    interact(button(fake_slack, "U0AUDIT", "deny"))
    assert _ephemeral(fake_slack) == ["Your JIT Broker account auditor (reader) may not decide requests: "
                                      "nothing was recorded."]
    assert fake_slack.views == [] and Decision.select().count() == 0


def test_an_admins_explicit_link_maps_a_user_whose_slack_email_differs(posted, interact, fake_slack, approver,
                                                                       runner):
    fake_slack.add_user("U0PERSONAL", "jc@personal.example")
    assert runner.invoke(args=["slack", "link", "jchen", "U0PERSONAL"]).exit_code == 0
    view = _open(interact, fake_slack, "U0PERSONAL", "deny")
    interact(submission(view, "U0PERSONAL", "linked by an admin"))
    assert Decision.get().decided_by == "jchen"
    assert AuditEntry.select().where(AuditEntry.action == "slack_user_linked").exists()


def test_an_inactive_ticket_is_refused_with_the_contracts_message(posted, interact, fake_slack, slack_approver):
    view = _open(interact, fake_slack, "U0JCHEN")
    Task.update(state=7).where(Task.id == posted.id).execute()  # Closed
    answer = interact(submission(view, "U0JCHEN", "late", "once"))
    assert contract.MSG_INACTIVE in answer.json["view"]["blocks"][0]["text"]["text"]
    interact(button(fake_slack, "U0JCHEN", "approve"))
    assert _ephemeral(fake_slack) == [contract.MSG_INACTIVE]
    assert Decision.select().count() == 0


def test_a_final_decision_cannot_be_changed_from_slack(posted, interact, fake_slack, slack_approver, fake_epm):
    view = _open(interact, fake_slack, "U0JCHEN", "deny")
    interact(submission(view, "U0JCHEN", "first"))
    assert delivery.deliver_due() == 1
    assert Decision.get().status == contract.DELIVERY_DELIVERED
    answer = interact(submission(view, "U0JCHEN", "second thoughts"))
    assert contract.MSG_FINAL in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 1


def test_self_approval_is_refused_as_in_the_browser(make_ticket, interact, fake_slack, slack_approver):
    Task.delete().execute()
    fake_slack.messages.clear()
    make_ticket(factories.application_request(user="CORP\\jchen"))
    outbox.send_due()
    view = _open(interact, fake_slack, "U0JCHEN")
    answer = interact(submission(view, "U0JCHEN", "my own", "once"))
    assert contract.MSG_SELF_APPROVAL in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 0


def test_two_approvers_are_needed_when_a_policy_says_so(posted, interact, fake_slack, slack_approver):
    Task.update(approvals_required=2).where(Task.id == posted.id).execute()
    second = factories.account("mlee", "admin")
    Account.update(email="mlee@corp.example").where(Account.id == second.id).execute()
    fake_slack.add_user("U0MLEE", "mlee@corp.example")
    view = _open(interact, fake_slack, "U0JCHEN")
    answer = interact(submission(view, "U0JCHEN", "first", "once"))
    assert "First approval recorded" in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 0
    again = interact(submission(view, "U0JCHEN", "me again", "once"))
    assert MSG_SAME_APPROVER in again.json["view"]["blocks"][0]["text"]["text"]
    interact(submission(_open(interact, fake_slack, "U0MLEE"), "U0MLEE", "second", "once"))
    assert Decision.get().decided_by == "mlee"


def test_the_modal_holds_the_reason_to_the_decision_forms_limit(posted, interact, fake_slack, slack_approver):
    view = _open(interact, fake_slack, "U0JCHEN", "deny")
    reason = next(block for block in view["blocks"] if block.get("block_id") == "reason")
    assert reason["element"]["max_length"] == contract.MAX_REASON_LENGTH


def test_a_denial_after_a_first_approval_leaves_no_approval_waiting_on_the_message(
        posted, interact, fake_slack, slack_approver, fake_epm):
    Task.update(approvals_required=2).where(Task.id == posted.id).execute()
    second = factories.account("mlee", "admin")
    Account.update(email="mlee@corp.example").where(Account.id == second.id).execute()
    fake_slack.add_user("U0MLEE", "mlee@corp.example")
    interact(submission(_open(interact, fake_slack, "U0JCHEN"), "U0JCHEN", "first", "once"))
    interact(submission(_open(interact, fake_slack, "U0MLEE", "deny"), "U0MLEE", "no"))
    delivery.deliver_due()
    outbox.send_due()

    blocks = fake_slack.message()["blocks"]
    line = next(block for block in blocks if block["type"] == "context")["elements"][0]["text"]
    assert "Denied by mlee" in line
    assert "second approver" not in line


@pytest.mark.parametrize("unstorable", ["\x00", "\udce9"], ids=["nul", "unpaired-surrogate"])
def test_a_reason_no_database_can_store_is_shown_beside_the_field_and_nothing_is_recorded(
        posted, interact, fake_slack, slack_approver, unstorable):
    view = _open(interact, fake_slack, "U0JCHEN", "deny")
    # Slack's payload is JSON: a \u0000 or \udce9 escape in it is legal and reaches the reason as that character.
    answer = interact(submission(view, "U0JCHEN", f"not needed{unstorable}"))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json == {"response_action": "errors", "errors": {"reason": contract.MSG_REASON_UNSTORABLE}}
    assert Decision.select().count() == 0
    assert interact(submission(view, "U0JCHEN", "not needed")).json["response_action"] == "update"
    assert Decision.get().reason == "not needed"
