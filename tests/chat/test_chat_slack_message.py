"""The ticket's message in the Slack channel: posted once per new ticket, with its facts and buttons."""
from datetime import timedelta

from app import claims
from app.chat import outbox, slack
from app.chat.models import STATUS_SENT, ChatPost
from app.models import Task, utcnow
from tests import factories


def _texts(blocks):
    found = []
    for block in blocks:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(part, dict) and "text" in part:
                found.append(part["text"] if isinstance(part["text"], str) else part["text"]["text"])
    return "\n".join(found)


def test_a_new_ticket_posts_one_message_with_its_facts_and_buttons(ticket, fake_slack):
    assert outbox.send_due() == 1
    assert outbox.send_due() == 0
    assert len(fake_slack.calls_to("chat.postMessage")) == 1
    message = fake_slack.message()
    text = _texts(message["blocks"])
    for fact in (ticket.number, ticket.requester, ticket.host, ticket.subject, "Application Access",
                 ticket.jit_request.reason, "No policy rule applies", "Requested duration"):
        assert fact in text
    buttons = next(block for block in message["blocks"] if block["type"] == "actions")["elements"]
    assert [button["text"]["text"] for button in buttons] == [
        "Approve Application Access", "Deny Application Access", "Open ticket"]
    assert buttons[2]["url"] == f"https://jit.example.com/tickets/{ticket.number}"
    assert ChatPost.get().message_ts in fake_slack.messages


def test_an_admin_request_offers_the_admin_access_buttons_and_its_duration(make_ticket, fake_slack):
    task = make_ticket(factories.admin_request(DurationRequested="7200"))
    outbox.send_due()
    message = fake_slack.message()
    assert "2 hours" in _texts(message["blocks"])
    assert "Administrative elevation" in _texts(message["blocks"])
    buttons = next(block for block in message["blocks"] if block["type"] == "actions")["elements"]
    assert [button["text"]["text"] for button in buttons][:2] == ["Approve Admin Access", "Deny Admin Access"]
    assert task.number in message["text"]


def test_an_epm_value_becomes_no_link_or_mention_and_stays_within_slack_limits(make_ticket, fake_slack):
    hostile = "<!channel> <https://evil.example|click> " + "x" * 3900
    make_ticket(factories.application_request(reason=hostile, productName=hostile, user="<@U0BOSS>"))
    assert outbox.send_due() == 1  # the fake refuses anything over Slack's limits
    text = _texts(fake_slack.message()["blocks"])
    assert "<!channel>" not in text and "<https://" not in text and "<@U0BOSS>" not in text
    assert "&lt;!channel&gt;" in text


def test_a_refused_message_is_retried_and_says_why(ticket, fake_slack):
    fake_slack.token = "xoxb-rotated"
    assert outbox.send_due() == 0
    post = ChatPost.get()
    assert post.status == "pending" and "invalid_auth" in post.last_error
    assert "xoxb" not in post.last_error


def test_a_purged_ticket_takes_its_chat_rows_with_it(posted):
    from datetime import timedelta

    from app.jobs.retention import purge
    from app.models import Task, utcnow

    Task.update(state=posted.ticket_type.closed_state, closed_at=utcnow() - timedelta(days=400)).where(
        Task.id == posted.id).execute()
    purge()
    assert not Task.select().exists() and not ChatPost.select().exists()


def test_slacks_rate_limit_is_waited_out_even_when_the_ticket_changes(ticket, fake_slack):
    fake_slack.retry_after = 120
    assert outbox.send_due() == 0
    post = ChatPost.get()
    assert post.status == "pending" and "ratelimited" in post.last_error
    assert post.next_attempt_at >= utcnow() + timedelta(seconds=110)

    outbox.queue_change(ticket)  # the ticket moved meanwhile

    assert ChatPost.get().next_attempt_at >= utcnow() + timedelta(seconds=110)
    assert outbox.send_due() == 0
    assert len(fake_slack.calls_to("chat.postMessage", ok=None)) == 1


def _answered_after_a_second_attempt_posted(fake_slack, monkeypatch, then=None):
    """Slack answers the first attempt's chat.postMessage after its claim ran out: meanwhile a second attempt took
    the row over and posted the ticket's message. `then` runs as the late answer comes back."""
    post_ticket = slack.post_ticket

    def slow(*args):
        monkeypatch.setattr(slack, "post_ticket", post_ticket)
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        second = outbox.send_post(ChatPost.get())
        assert second.status == STATUS_SENT and second.message_ts in fake_slack.messages
        answer = post_ticket(*args)
        if then is not None:
            then()
        return answer

    monkeypatch.setattr(slack, "post_ticket", slow)


def test_a_late_attempt_leaves_one_message_in_the_channel_the_one_kept_up_to_date(
        ticket, fake_slack, monkeypatch, caplog):
    _answered_after_a_second_attempt_posted(fake_slack, monkeypatch)

    outbox.send_due()

    assert len(fake_slack.calls_to("chat.postMessage")) == 2
    [(ts, message)] = fake_slack.messages.items()
    post = ChatPost.get()
    assert (post.status, post.channel_id, post.message_ts) == (STATUS_SENT, fake_slack.channel, ts)
    [deleted] = fake_slack.calls_to("chat.delete")
    assert deleted.arguments["ts"] != ts
    assert [record.levelname for record in caplog.records
            if f"{fake_slack.channel} {deleted.arguments['ts']}" in record.getMessage()
            and "deleted" in record.getMessage()] == ["INFO"]

    Task.update(state=2).where(Task.id == ticket.id).execute()
    outbox.queue_change(ticket)
    assert outbox.send_due() == 1
    assert "In Progress" in str(fake_slack.message()["blocks"])
    assert fake_slack.calls_to("chat.update")[-1].arguments["ts"] == ts


def test_a_late_message_slack_will_not_delete_is_named_in_a_warning_and_the_row_keeps_its_own(
        ticket, fake_slack, monkeypatch, caplog):
    def rate_limited():
        fake_slack.retry_after = 30

    _answered_after_a_second_attempt_posted(fake_slack, monkeypatch, then=rate_limited)

    outbox.send_due()

    [refused] = fake_slack.calls_to("chat.delete", ok=False)
    late_ts = refused.arguments["ts"]
    post = ChatPost.get()
    assert post.status == STATUS_SENT and post.message_ts not in (None, late_ts)
    [warning] = [record for record in caplog.records if record.levelname == "WARNING"]
    assert f"{fake_slack.channel} {late_ts}" in warning.getMessage()
    assert fake_slack.token not in caplog.text


def test_a_late_update_that_lands_after_a_newer_one_is_followed_by_the_ticket_as_it_is(
        ticket, fake_slack, monkeypatch):
    assert outbox.send_due() == 1
    Task.update(state=2).where(Task.id == ticket.id).execute()  # In Progress
    outbox.queue_change(ticket)
    update_ticket = slack.update_ticket

    def slow(*args):
        """Slack takes the first attempt's update (In Progress) after its claim ran out: meanwhile the ticket went
        On Hold and a second attempt took the row over and showed that."""
        monkeypatch.setattr(slack, "update_ticket", update_ticket)
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        Task.update(state=3).where(Task.id == ticket.id).execute()
        outbox.queue_change(ticket)
        second = outbox.send_post(ChatPost.get())
        assert second.status == STATUS_SENT and "On Hold" in str(fake_slack.message()["blocks"])
        update_ticket(*args)  # the late one lands last

    monkeypatch.setattr(slack, "update_ticket", slow)
    outbox.send_due()

    # The late update (In Progress) was the last Slack took; the row's next round showed the ticket again.
    updates = [str(call.arguments["blocks"]) for call in fake_slack.calls_to("chat.update")]
    assert ["On Hold" in blocks for blocks in updates] == [True, False, True]
    assert "On Hold" in str(fake_slack.message()["blocks"]) and len(fake_slack.messages) == 1
    assert ChatPost.get().status == STATUS_SENT
    assert outbox.send_due() == 0


def test_a_late_update_whose_answer_was_lost_is_followed_by_the_ticket_as_it_is(ticket, fake_slack, monkeypatch):
    assert outbox.send_due() == 1
    Task.update(state=2).where(Task.id == ticket.id).execute()  # In Progress
    outbox.queue_change(ticket)
    update_ticket = slack.update_ticket

    def slow_then_lost(*args):
        """As in the test above, but the late update's answer never comes back (a read timeout): Slack took it."""
        monkeypatch.setattr(slack, "update_ticket", update_ticket)
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        Task.update(state=3).where(Task.id == ticket.id).execute()
        outbox.queue_change(ticket)
        assert outbox.send_post(ChatPost.get()).status == STATUS_SENT
        update_ticket(*args)
        raise slack.ChatError("could not reach Slack for chat_update: ReadTimeout")

    monkeypatch.setattr(slack, "update_ticket", slow_then_lost)
    outbox.send_due()

    updates = [str(call.arguments["blocks"]) for call in fake_slack.calls_to("chat.update")]
    assert ["On Hold" in blocks for blocks in updates] == [True, False, True]
    assert "On Hold" in str(fake_slack.message()["blocks"])
    post = ChatPost.get()
    assert (post.status, post.last_error) == (STATUS_SENT, None), "the lost answer is not the row's failure"


def test_a_late_message_is_kept_when_the_attempt_that_took_over_posted_none(ticket, fake_slack, monkeypatch):
    post_ticket = slack.post_ticket

    def slow(*args):
        """The first attempt's chat.postMessage comes back after its claim ran out; the second attempt, which took
        the row over meanwhile, was rate-limited and posted nothing."""
        monkeypatch.setattr(slack, "post_ticket", post_ticket)
        ChatPost.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        fake_slack.retry_after = 30
        second = outbox.send_post(ChatPost.get())
        assert second.status == "pending" and second.message_ts is None
        fake_slack.retry_after = None
        return post_ticket(*args)

    monkeypatch.setattr(slack, "post_ticket", slow)
    outbox.send_due()

    [(ts, _message)] = fake_slack.messages.items()
    post = ChatPost.get()
    assert (post.status, post.message_ts, post.channel_id) == ("pending", ts, fake_slack.channel)
    assert not fake_slack.calls_to("chat.delete", ok=None), "the ticket's only message stays in the channel"

    Task.update(state=2).where(Task.id == ticket.id).execute()
    ChatPost.update(not_before=None, next_attempt_at=utcnow()).execute()  # Slack's wait is over
    assert outbox.send_due() == 1
    assert fake_slack.calls_to("chat.update")[-1].arguments["ts"] == ts
    assert "In Progress" in str(fake_slack.message()["blocks"]) and len(fake_slack.messages) == 1
