"""The Slack door with the identity provider answering: a person signed in through a real OpenID provider
(oidc-provider on loopback), whose re-check is due, decides from Slack only when the provider vouches for them at
that moment (a refresh-token grant it answers). Out of the groups, or disabled at the provider, the click is refused
and their standing changes as the browser door's re-check changes it: every session ends, the tokens go, the audit
log says why. (tests/chat/test_chat_slack_deciders.py has the provider unreachable.)"""
from datetime import timedelta

import pytest

from app.auth import oidc, steps
from app.audit.models import AuditEntry
from app.models import Account, Decision, utcnow
from tests.chat.conftest import SIGNING_SECRET, button, submission
from tests.oidcprovider import ADMIN_GROUP, APPROVER_GROUP, CLIENT_ID, CLIENT_SECRET, OidcProvider

PUBLIC_URL = "https://jit.example.com"
PEOPLE = {"pat": {"preferred_username": "pat", "email": "pat@corp.example", "name": "Pat Approver",
                  "groups": [APPROVER_GROUP]}}
# [session] idle_minutes is 30: a re-check is due once 15 minutes have passed since the provider last vouched.
DUE_MINUTES = 20

pytestmark = pytest.mark.usefixtures("posted")


@pytest.fixture
def provider(tmp_path):
    with OidcProvider(PUBLIC_URL, PEOPLE, tmp_path) as idp:
        yield idp


@pytest.fixture
def app_settings(fake_slack, provider):
    return {"slack_bot_token": fake_slack.token, "slack_signing_secret": SIGNING_SECRET,
            "slack_channel": fake_slack.channel, "slack_api_url": fake_slack.url, "public_url": PUBLIC_URL,
            "oidc_issuer": provider.issuer, "oidc_client_id": CLIENT_ID, "oidc_client_secret": CLIENT_SECRET,
            "oidc_approver_groups": APPROVER_GROUP, "oidc_admin_groups": ADMIN_GROUP}


@pytest.fixture
def pat(web, provider, fake_slack):
    """Pat, signed in to the broker through the provider's login page (`web` holds the session), known
    to Slack by the e-mail the provider verified, the provider's last word on them DUE_MINUTES old."""
    assert provider.sign_in(web, "pat").headers["Location"] == "/tickets"
    assert web.get("/tickets").status_code == 200
    account = Account.get(Account.idp_subject == "pat")
    Account.update(idp_checked_at=utcnow() - timedelta(minutes=DUE_MINUTES)).where(
        Account.id == account.id).execute()
    fake_slack.add_user("U0PAT", "pat@corp.example")
    return Account.get_by_id(account.id)


def _refresh_grants(provider):
    return [(grant["account"], grant["error"]) for grant in provider.grants("refresh_token")]


def _click_refused(interact, fake_slack):
    """Pat clicks Approve: no modal opens, nothing is recorded; the ephemeral message's text."""
    assert interact(button(fake_slack, "U0PAT", "approve")).status_code == 200
    assert fake_slack.views == []
    assert Decision.select().count() == 0
    return [call.arguments["text"] for call in fake_slack.calls_to("chat.postEphemeral")][-1]


def _standing_after_the_provider_refused(web, pat, reason):
    """What the browser door's re-check leaves: every session ended, the tokens forgotten, the reason audited."""
    now = Account.get_by_id(pat.id)
    assert now.idp_tokens is None
    assert now.session_epoch == pat.session_epoch + 1
    ended = AuditEntry.get(AuditEntry.action == oidc.ACCESS_ENDED)
    assert ended.actor == "pat" and reason in ended.detail["reason"]
    assert web.get("/tickets").headers["Location"].startswith("/sign-in")


def test_a_due_re_check_the_provider_answers_lets_the_person_decide_from_slack(interact, fake_slack, provider, pat):
    assert _refresh_grants(provider) == []
    interact(button(fake_slack, "U0PAT", "approve"))
    assert _refresh_grants(provider) == [("pat", None)]  # the provider was asked, and vouched
    checked = Account.get_by_id(pat.id).idp_checked_at
    assert checked > pat.idp_checked_at + timedelta(minutes=DUE_MINUTES - 1)

    answer = interact(submission(fake_slack.views[-1], "U0PAT", "Needed for the release", "once"))
    assert "Approved by pat" in answer.json["view"]["blocks"][0]["text"]["text"]
    decision = Decision.get()
    assert (decision.decided_by, decision.decision) == ("pat", "Approved")
    assert _refresh_grants(provider) == [("pat", None)]  # vouched a moment ago: not asked again
    assert Account.get_by_id(pat.id).idp_tokens  # kept for the next re-check


def test_a_person_the_provider_moved_out_of_the_groups_is_refused_in_slack(
        interact, fake_slack, provider, pat, web):
    provider.set_groups("pat", ["finance"])
    assert steps.MSG_NOT_VOUCHED in _click_refused(interact, fake_slack)
    assert _refresh_grants(provider) == [("pat", None)]  # it answered, with groups giving no role
    _standing_after_the_provider_refused(web, pat, "no longer in an admin or approver group")


def test_a_person_disabled_at_the_provider_is_refused_in_slack(interact, fake_slack, provider, pat, web):
    provider.remove_user("pat")
    assert steps.MSG_NOT_VOUCHED in _click_refused(interact, fake_slack)
    assert _refresh_grants(provider) == [("pat", "invalid_grant")]
    _standing_after_the_provider_refused(web, pat, "invalid_grant")


def test_a_modal_opened_while_the_provider_vouched_records_nothing_once_it_no_longer_does(
        interact, fake_slack, provider, pat, web):
    interact(button(fake_slack, "U0PAT", "approve"))
    view = fake_slack.views[-1]
    provider.set_groups("pat", ["finance"])
    Account.update(idp_checked_at=utcnow() - timedelta(minutes=DUE_MINUTES)).where(Account.id == pat.id).execute()
    answer = interact(submission(view, "U0PAT", "Needed for the release", "once"))
    assert steps.MSG_NOT_VOUCHED in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 0
    assert _refresh_grants(provider) == [("pat", None), ("pat", None)]  # asked at the click and at the submission
    _standing_after_the_provider_refused(web, pat, "no longer in an admin or approver group")
