"""Every request from Slack is verified: v0 signature with the signing secret, a timestamp within 5 minutes,
and a signature used once (kept in the database, so every host refuses a replay)."""
import time
from datetime import timedelta

import pytest

from app.chat.models import SlackSignature
from tests.chat.conftest import INTERACTIONS, button, signed


@pytest.fixture
def click(posted, fake_slack, slack_approver):
    return button(fake_slack, "U0JCHEN", "approve")


def test_a_signed_interaction_is_accepted(click, interact, fake_slack):
    assert interact(click).status_code == 200
    assert len(fake_slack.views) == 1


def test_a_bad_signature_gets_401_a_log_line_and_no_action(click, interact, fake_slack, caplog):
    answer = interact(click, secret="not-the-signing-secret")
    assert answer.status_code == 401
    assert fake_slack.views == [] and fake_slack.calls_to("users.info") == []
    assert "refused a Slack interaction from 127.0.0.1: a bad signature" in caplog.text


def test_a_replayed_request_gets_401(click, web, fake_slack, caplog):
    body, headers = signed(click)
    assert web.request("POST", INTERACTIONS, data=body, headers=headers).status_code == 200
    assert web.request("POST", INTERACTIONS, data=body, headers=headers).status_code == 401
    assert "a replayed signature" in caplog.text
    assert len(fake_slack.views) == 1


def test_a_replay_is_refused_by_another_process_that_never_saw_the_request(click, app, fake_slack):
    from app import create_app

    body, headers = signed(click)
    assert app.test_client().post(INTERACTIONS, data=body, headers=headers).status_code == 200
    other = create_app({**{name: getattr(app.extensions["settings"], name) for name in (
        "database_url", "slack_bot_token", "slack_signing_secret", "slack_channel", "slack_api_url")},
        "secret_key": "test-secret-key", "TESTING": True})
    assert other.test_client().post(INTERACTIONS, data=body, headers=headers).status_code == 401


def test_a_request_older_than_five_minutes_gets_401(click, interact, caplog):
    assert interact(click, timestamp=int(time.time()) - 301).status_code == 401
    assert "more than 5 minutes" in caplog.text


def test_a_request_without_slacks_headers_gets_401(click, client):
    body, _headers = signed(click)
    answer = client.post(INTERACTIONS, data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 401


def test_the_signing_secret_and_bot_token_are_never_logged(click, interact, caplog, fake_slack):
    interact(click, secret="wrong")
    interact(click)
    for secret in ("8f742231b10e8888abcd99yyyzzz85a5", fake_slack.token):
        assert secret not in caplog.text


def test_signatures_older_than_the_window_are_forgotten(click, interact):
    SlackSignature.create(signature="v0=old", seen_at=SlackSignature.seen_at.default().replace(year=2020))
    assert interact(click).status_code == 200
    assert not SlackSignature.select().where(SlackSignature.signature == "v0=old").exists()


@pytest.mark.parametrize("payload", [[], {"type": "block_actions", "actions": "approve"},
                                     {"type": "view_submission", "view": ["decide"]}])
def test_a_signed_payload_of_the_wrong_shape_is_a_clear_400(posted, interact, payload):
    answer = interact(payload)
    assert answer.status_code == 400


def test_a_signed_body_without_a_payload_is_a_clear_400(posted, client):
    from urllib.parse import urlencode

    from slack_sdk.signature import SignatureVerifier

    from tests.chat.conftest import SIGNING_SECRET

    body, timestamp = urlencode({"token": "x"}), str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    answer = client.post(INTERACTIONS, data=body, content_type="application/x-www-form-urlencoded",
                         headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature})
    assert answer.status_code == 400


@pytest.mark.parametrize("digits", [400, 5000])  # beyond float arithmetic; beyond int() itself
def test_a_timestamp_of_hundreds_of_digits_gets_401_as_no_timestamp(click, client, fake_slack, caplog, digits):
    body, headers = signed(click)
    answer = client.post(INTERACTIONS, data=body, headers={**headers, "X-Slack-Request-Timestamp": "1" * digits})
    assert answer.status_code == 401
    assert "no request timestamp" in caplog.text
    assert fake_slack.views == []


def test_a_request_from_a_clock_running_ahead_cannot_be_replayed_while_its_timestamp_passes(click, client,
                                                                                            fake_slack):
    body, headers = signed(click, timestamp=int(time.time()) + 240)  # Slack's clock 4 minutes ahead of ours
    assert client.post(INTERACTIONS, data=body, headers=headers).status_code == 200
    # Over 5 minutes since it was seen; its timestamp passes for a while yet (now + 4 minutes is within 5).
    for row in SlackSignature.select():
        SlackSignature.update(seen_at=row.seen_at - timedelta(seconds=310)).where(SlackSignature.id == row.id).execute()

    assert client.post(INTERACTIONS, data=body, headers=headers).status_code == 401
    assert len(fake_slack.views) == 1
