"""Slack against the broker served by gunicorn: the message appears after EPM's webhook is answered, two
approvers submitting at once give EPM one decision, every interaction is answered within Slack's 3 seconds,
and the message follows the ticket to EPM's final decision."""
import threading
import time

import pytest
import requests

from app import contract
from app.models import Account, Decision, Task
from tests import factories
from tests.chat.conftest import INTERACTIONS, SIGNING_SECRET, button, signed, submission
from tests.chat.fake_slack import FakeSlack
from tests.live import LiveServer, connected_epm
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

SLACK_ANSWER_SECONDS = 3


@pytest.fixture
def slack_loop(app, database_url, api_account, tmp_path):
    """gunicorn, a fake EPM that finalizes what it applies, and a fake Slack, all knowing each other."""
    for name in ("alice", "bob"):
        account = factories.account(name, "user")
        Account.update(email=f"{name}@corp.example").where(Account.id == account.id).execute()
    config = tmp_path / "broker.toml"
    config.write_text("[epm]\ntimeout_seconds = 2\n")
    with FakeSlack() as slack:
        slack.add_user("U0ALICE", "alice@corp.example")
        slack.add_user("U0BOB", "bob@corp.example")
        env = {"JITBROKER_CONFIG": str(config), "JITBROKER_SLACK_BOT_TOKEN": slack.token,
               "JITBROKER_SLACK_SIGNING_SECRET": SIGNING_SECRET, "JITBROKER_SLACK_CHANNEL": slack.channel,
               "JITBROKER_SLACK_API_URL": slack.url}
        with LiveServer(database_url, workers=2, env=env) as server:
            with connected_epm(server, auto_finalize=True) as epm:
                yield server, epm, slack


def _send(server, payload):
    body, headers = signed(payload)
    started = time.monotonic()
    answer = requests.post(f"{server.url}{INTERACTIONS}", data=body, headers=headers, timeout=30)
    return answer, time.monotonic() - started


def _status_line(slack):
    blocks = slack.message()["blocks"]
    return next(block for block in blocks if block["type"] == "context")["elements"][0]["text"]


def test_two_approvers_submitting_at_once_give_epm_one_decision(slack_loop):
    server, epm, slack = slack_loop
    number = Task.get(Task.request_id == epm.fire_application_request()).number
    wait_until(lambda: len(slack.messages) == 1, message="the ticket's message in the channel")

    views = {}
    for user_id in ("U0ALICE", "U0BOB"):
        answer, seconds = _send(server, button(slack, user_id, "approve" if user_id == "U0ALICE" else "deny"))
        assert answer.status_code == 200 and seconds < SLACK_ANSWER_SECONDS
        views[user_id] = slack.views[-1]

    barrier = threading.Barrier(2)
    answers = {}

    def submit(user_id, unit):
        payload = submission(views[user_id], user_id, f"{user_id} decided", unit, "2" if unit else None)
        barrier.wait()
        answers[user_id] = _send(server, payload)

    threads = [threading.Thread(target=submit, args=args) for args in (("U0ALICE", "hours"), ("U0BOB", None))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    texts = {}
    for user_id, (answer, seconds) in answers.items():
        assert answer.status_code == 200 and seconds < SLACK_ANSWER_SECONDS
        texts[user_id] = answer.json()["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 1
    winner = Decision.get()
    loser = "U0BOB" if winner.decided_by == "alice" else "U0ALICE"
    assert any(message in texts[loser] for message in (contract.MSG_DECISION_IN_FLIGHT, contract.MSG_FINAL))

    wait_until(lambda: epm.applied_count == 1, message="EPM to receive the decision after Slack's answer")
    assert epm.wait_for_finalizations()
    wait_until(lambda: "EPM finalized" in _status_line(slack), message=lambda: f"the message to show EPM's "
               f"final decision, not {_status_line(slack)!r}")
    assert epm.received_count == 1
    assert f"by {winner.decided_by}: sent to EPM and acknowledged" in _status_line(slack)
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert Task.get(Task.number == number).jit_request.final_decision_by == winner.decided_by
