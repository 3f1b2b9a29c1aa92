"""Slack on loopback: the strict fake Web API, the broker configured for it, and interactions sent as Slack
sends them (a form-encoded `payload`, signed with the signing secret)."""
import json
import time
from urllib.parse import urlencode

import pytest
from slack_sdk.signature import SignatureVerifier

from app.chat import outbox
from app.models import Account
from tests.chat.fake_slack import FakeSlack, validate_view

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
INTERACTIONS = "/integrations/slack/interactions"


@pytest.fixture
def fake_slack():
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def app_settings(fake_slack):
    return {"slack_bot_token": fake_slack.token, "slack_signing_secret": SIGNING_SECRET,
            "slack_channel": fake_slack.channel, "slack_api_url": fake_slack.url,
            "public_url": "https://jit.example.com"}


def signed(payload, timestamp=None, secret=SIGNING_SECRET):
    """(body, headers) of an interaction as Slack sends it."""
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return body, {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature,
                  "Content-Type": "application/x-www-form-urlencoded"}


def button(fake, user_id, action_id):
    """A click on the ticket message's button `action_id`, as Slack reports it."""
    ts, message = next(iter(fake.messages.items()))
    actions = next(block for block in message["blocks"] if block["type"] == "actions")
    element = next(item for item in actions["elements"] if item["action_id"] == action_id)
    return {"type": "block_actions", "user": {"id": user_id}, "trigger_id": fake.trigger(),
            "channel": {"id": fake.channel}, "container": {"type": "message", "channel_id": fake.channel,
                                                           "message_ts": ts},
            "actions": [{"type": "button", "block_id": actions["block_id"], "action_id": action_id,
                         "value": element.get("value")}]}


def submission(view, user_id, reason="", unit=None, value=None):
    """The opened `view` submitted with these values, as Slack reports it."""
    values = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        name = block["block_id"]
        if element["type"] == "radio_buttons":
            chosen = next((option for option in element["options"] if option["value"] == unit), None)
            values[name] = {element["action_id"]: {"type": "radio_buttons", "selected_option": chosen}}
        else:
            text = reason if name == "reason" else value
            values[name] = {element["action_id"]: {"type": "plain_text_input", "value": text}}
    return {"type": "view_submission", "user": {"id": user_id},
            "view": {**view, "state": {"values": values}}}


@pytest.fixture
def interact(web):
    """Send a signed interaction to the broker, each in its own app context as a real request is (nothing in `g`,
    such as the account Flask-Login loaded, carries over from the one before); returns the response."""

    def interact(payload, **signing):
        body, headers = signed(payload, **signing)
        answer = web.request("POST", INTERACTIONS, data=body, headers=headers)
        if answer.status_code == 200 and answer.get_data():
            # What Slack would do with the answer: show a valid view, or errors beside the modal's inputs.
            document = answer.json
            if document["response_action"] == "update":
                validate_view(document["view"])
            else:
                inputs = {block["block_id"] for block in payload["view"]["blocks"] if block["type"] == "input"}
                assert document["response_action"] == "errors" and set(document["errors"]) <= inputs
        return answer

    return interact


@pytest.fixture
def slack_approver(approver, fake_slack):
    """The approver, known to Slack by the e-mail address on their account."""
    Account.update(email="jchen@corp.example").where(Account.id == approver.id).execute()
    fake_slack.add_user("U0JCHEN", "JChen@corp.example")
    return Account.get_by_id(approver.id)


@pytest.fixture
def posted(ticket, fake_slack):
    """A ticket whose message is in the channel."""
    assert outbox.send_due() == 1
    return ticket
