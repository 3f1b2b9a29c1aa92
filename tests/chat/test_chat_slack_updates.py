"""The ticket's message updates in place as the ticket moves: decided by whom, sent to EPM, acknowledged,
finalized by EPM's update event, revoked, closed; a decision taken in the browser updates it too. Changes are
sent by the outbox after the answer, never while Slack or EPM waits."""
from app import contract
from app.chat import outbox
from app.chat.models import ChatPost
from app.decisions import delivery
from app.models import Task
from tests import factories
from tests.chat.conftest import button, submission


def _status(fake_slack):
    """The message's status line and its buttons' labels."""
    blocks = fake_slack.message()["blocks"]
    line = next(block for block in blocks if block["type"] == "context")["elements"][0]["text"]
    buttons = [element["text"]["text"] for element in
               next(block for block in blocks if block["type"] == "actions")["elements"]]
    return line, buttons


def test_the_message_follows_a_slack_decision_through_acknowledgement_and_finalization(
        make_ticket, interact, fake_slack, slack_approver, fake_epm, deliver):
    task = make_ticket(factories.admin_request())
    outbox.send_due()
    assert _status(fake_slack) == ("Waiting for a decision", ["Approve Admin Access", "Deny Admin Access",
                                                              "Open ticket"])
    interact(button(fake_slack, "U0JCHEN", "approve"))
    interact(submission(fake_slack.views[-1], "U0JCHEN", "Patch night", "hours", "2"))
    assert outbox.send_due() == 1
    line, buttons = _status(fake_slack)
    assert line == "Approved (2 hours) by jchen: waiting to be sent to EPM"
    assert buttons == ["Open ticket"]

    assert delivery.deliver_due() == 1
    outbox.send_due()
    assert _status(fake_slack)[0] == "Approved (2 hours) by jchen: sent to EPM and acknowledged"

    assert deliver(factories.admin_decision(task.request_id)).status_code == 200
    outbox.send_due()
    line = _status(fake_slack)[0]
    assert "EPM finalized: Approved" in line

    assert deliver(factories.admin_revocation(task.request_id)).status_code == 200
    outbox.send_due()
    assert "EPM since: Revoked" in _status(fake_slack)[0]
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    assert len(fake_slack.calls_to("chat.update")) == 4


def test_an_approval_epm_had_already_denied_shows_epm_s_denial_and_not_the_approval(
        make_ticket, interact, fake_slack, slack_approver, fake_epm):
    task = make_ticket(factories.application_request())
    fake_epm.add_request(contract.KIND_APPLICATION, task.request_id)
    fake_epm.decide(task.request_id, contract.DECISION_DENIED, by="epm-admin")  # its webhook is not here yet
    outbox.send_due()
    interact(button(fake_slack, "U0JCHEN", "approve"))
    interact(submission(fake_slack.views[-1], "U0JCHEN", "Needed today", "once", ""))
    assert delivery.deliver_due() == 1
    outbox.send_due()
    line, buttons = _status(fake_slack)
    assert line.startswith("Approved (once) by jchen: not applied: EPM had already decided the request; "
                           "EPM finalized: Denied by epm-admin")
    assert "it can be decided again" not in line
    assert buttons == ["Open ticket"]


def test_a_decision_taken_in_the_browser_updates_the_message(posted, as_approver, fake_slack):
    answer = as_approver.post(f"/tickets/{posted.number}/deny", data={"reason": "Not today"})
    assert answer.status_code == 302
    outbox.send_due()
    line, buttons = _status(fake_slack)
    assert line.startswith("Denied by jchen: ")
    assert buttons == ["Open ticket"]


def test_closing_the_ticket_updates_the_message(posted, as_approver, fake_slack):
    as_approver.post(f"/tickets/{posted.number}/state", data={"state": "Closed"})
    outbox.send_due()
    line, buttons = _status(fake_slack)
    assert line == "Ticket Closed"
    assert buttons == ["Open ticket"]


def test_a_change_while_the_message_is_being_sent_is_sent_right_after_it(posted, fake_slack, monkeypatch):
    from app.chat import slack

    real = slack.update_ticket
    moves = []

    def update_while_the_ticket_moves(*args):
        if not moves:
            moves.append(1)
            Task.update(state=2).where(Task.id == posted.id).execute()
            outbox.queue_change(posted)  # what ticket_changed does in the moving transaction
            assert ChatPost.get().status == "sending"  # claimed: no other process sends it meanwhile
        real(*args)

    outbox.queue_change(posted)
    monkeypatch.setattr(slack, "update_ticket", update_while_the_ticket_moves)
    assert outbox.send_due() == 1
    post = ChatPost.get()
    assert post.status == "sent" and post.revision == post.sent_revision
    assert len(fake_slack.calls_to("chat.update")) == 2
    assert "In Progress" in str(fake_slack.message()["blocks"])


def test_nothing_is_queued_for_slack_when_it_is_not_configured(make_ticket, app, fake_slack):
    from dataclasses import replace

    app.extensions["settings"] = replace(app.extensions["settings"], slack_bot_token="")
    make_ticket()
    assert ChatPost.select().count() == 0


def test_a_request_that_expired_after_epm_refused_its_decision_no_longer_says_it_can_be_decided_again(
        make_ticket, fake_slack):
    from datetime import timedelta

    from app.jobs import expiry
    from app.models import Decision

    task = make_ticket(factories.application_request(), age=timedelta(hours=30))
    Decision.create(task=task, decision=contract.DECISION_APPROVED, reason="ok", decided_by="jchen",
                    ticket_url="https://broker.example/t", status=contract.DELIVERY_FAILED, last_status=400)
    assert expiry.expire_pending() == 1  # nobody decided it again in time
    outbox.send_due()

    line, buttons = _status(fake_slack)
    assert "it can be decided again" not in line
    assert "Approved by jchen: refused by EPM" in line and "Expired: no decision in time" in line
    assert buttons == ["Open ticket"]
