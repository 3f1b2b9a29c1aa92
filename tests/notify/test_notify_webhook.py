"""The chat webhook notification: {"text": ...} as Slack and Teams incoming webhooks take it."""
import json
from datetime import timedelta

import pytest
import responses

from app import claims, contract
from app.configuration import update_configuration
from app.decisions import delivery
from app.jobs.registry import JOBS, run_job
from app.models import utcnow
from app.notify.models import (
    CHANNEL_WEBHOOK, STATUS_PENDING, STATUS_SENDING, STATUS_SENT, STATUS_SKIPPED, Notification,
)
from tests import factories

HOOK = "https://hooks.slack.com/services/T000/B000/secret-token"


@pytest.fixture
def webhook(app):
    update_configuration({"notify_webhook_url": HOOK})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def posted(mock):
    return [json.loads(call.request.body) for call in mock.calls if call.request.url == HOOK]


def send_notifications():
    return run_job(JOBS["send_notifications"])


def test_a_new_ticket_is_posted_once_as_text(webhook, make_ticket):
    webhook.post(HOOK, body="ok")
    task = make_ticket(factories.application_request(user="CORP\\mrivera"))
    assert posted(webhook) == [], "the webhook answer does not wait for the chat webhook"

    send_notifications()
    send_notifications()

    [body] = posted(webhook)
    assert list(body) == ["text"]
    assert task.number in body["text"] and "Requested by: CORP\\mrivera" in body["text"]
    assert webhook.calls[0].request.headers["Content-Type"] == "application/json"
    notification = Notification.get(Notification.channel == CHANNEL_WEBHOOK)
    assert notification.status == STATUS_SENT


def test_markup_from_epm_is_escaped_in_chat_text(webhook, make_ticket):
    webhook.post(HOOK, body="ok")
    make_ticket(factories.application_request(productName="<!channel> <https://evil.example|click> & <b>x</b>"))
    send_notifications()
    [body] = posted(webhook)
    assert "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; &lt;b&gt;x&lt;/b&gt;" in body["text"]
    assert "<" not in body["text"] and ">" not in body["text"]


def test_a_failing_webhook_is_retried_and_its_address_never_logged(webhook, make_ticket):
    webhook.post(HOOK, status=500, body="no_service")
    make_ticket()
    send_notifications()
    notification = Notification.get()
    assert notification.status == STATUS_PENDING and notification.attempts == 1
    assert "HTTP 500" in notification.last_error and "secret-token" not in notification.last_error


@pytest.mark.parametrize("answer", [
    # A gateway that echoes the request it refused, address and all.
    "invalid request to https://hooks.slack.com/services/T000/B000/secret-token",
    "no webhook is known as secret-token",
    "Authorization: Bearer secret-token-in-header",
    '{"error": "invalid_token", "token": "secret-token-in-json"}',
])
def test_a_failing_webhook_answer_is_stored_without_the_secrets_it_echoes(webhook, make_ticket, answer):
    webhook.post(HOOK, status=400, body=answer)
    make_ticket()
    send_notifications()
    last_error = Notification.get().last_error
    assert last_error.startswith("the notification webhook answered HTTP 400: ")
    assert "secret-token" not in last_error and "********" in last_error


def test_a_long_answer_from_a_failing_webhook_is_stored_cut_short_saying_so(webhook, make_ticket):
    webhook.post(HOOK, status=500, body="upstream failure " + "x" * 300)
    make_ticket()
    send_notifications()
    last_error = Notification.get().last_error
    assert "HTTP 500: upstream failure x" in last_error
    assert last_error.endswith("…") and len(last_error.split(": ", 1)[1]) == 200


def test_the_webhook_address_is_masked_in_config_show(webhook, runner):
    output = runner.invoke(args=["config", "show"]).output
    assert "notify_webhook_url = ********" in output and "secret-token" not in output


def test_an_address_that_is_not_a_web_url_is_refused(app, runner):
    result = runner.invoke(args=["config", "set", "notify_webhook_url=ftp://hooks.example.com/x"])
    assert result.exit_code == 1 and "notify_webhook_url" in result.output


def test_notify_test_posts_to_the_webhook(webhook, runner):
    webhook.post(HOOK, body="ok")
    result = runner.invoke(args=["notify", "test"])
    assert result.exit_code == 0 and "webhook: OK: sent" in result.output
    assert "Test notification" in posted(webhook)[0]["text"]


def test_a_webhook_asking_to_wait_is_left_alone_that_long(webhook, make_ticket):
    webhook.post(HOOK, status=429, body="rate_limited", headers={"Retry-After": "900"})
    make_ticket()
    send_notifications()
    notification = Notification.get()
    assert notification.status == STATUS_PENDING and "HTTP 429" in notification.last_error
    assert notification.next_attempt_at >= utcnow() + timedelta(seconds=890)


def test_a_wait_asked_for_is_followed_for_an_hour_at_most(webhook, make_ticket):
    webhook.post(HOOK, status=503, body="down", headers={"Retry-After": "9" * 400})
    make_ticket()
    send_notifications()
    wait = Notification.get().next_attempt_at - utcnow()
    assert timedelta(minutes=59) < wait <= timedelta(hours=1)


def test_a_request_for_a_decision_held_up_until_the_ticket_was_decided_is_skipped(
        webhook, make_ticket, as_approver, fake_epm):
    webhook.add_passthru("http://")  # the fake EPM on loopback
    webhook.post(HOOK, status=503, body="down")
    task = make_ticket()
    send_notifications()
    assert as_approver.post(f"/tickets/{task.number}/deny", data={"reason": "Not today"}).status_code == 302
    delivery.deliver_due()
    webhook.replace(responses.POST, HOOK, body="ok")  # the webhook is back
    Notification.update(next_attempt_at=utcnow()).execute()

    send_notifications()

    assert [call.response.status_code for call in webhook.calls if call.request.url == HOOK] == [503]
    notification = Notification.get()
    assert notification.status == STATUS_SKIPPED
    assert notification.last_error == f"the ticket no longer awaits a decision: {contract.MSG_FINAL}"


def _taken_over_then(status):
    """A webhook answering `status` so late that the attempt outlived its claim, another process claiming the
    notification for the next attempt meanwhile."""

    def answer(_request):
        Notification.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()
        assert claims.claim_attempt(Notification, Notification.get().id, 60)
        return status, {}, "late"

    return answer


@pytest.mark.parametrize("late_answer", [200, 500], ids=["sent", "failed"])
def test_a_late_outcome_of_an_attempt_past_its_claim_leaves_the_next_attempt_s_claim_alone(
        webhook, make_ticket, caplog, late_answer):
    webhook.add_callback(responses.POST, HOOK, callback=_taken_over_then(late_answer))
    make_ticket()

    send_notifications()

    notification = Notification.get()
    assert (notification.status, notification.attempts) == (STATUS_SENDING, 2)
    assert notification.claimed_until > claims.database_now(), "still claimed by the attempt that took it over"
    assert (notification.sent_at, notification.last_error, notification.recipients) == (None, None, None)
    assert [record.levelname for record in caplog.records
            if f"notification {notification.id} " in record.getMessage() and "attempt 1 is dropped"
            in record.getMessage()] == ["INFO"]
