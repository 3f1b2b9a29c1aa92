"""Who may decide from Slack: the rule every door applies (app/auth/steps.py `decider_refusal`), tried as the attack
against the Slack door. A person owing a step, a local non-admin while local sign-in is for admins only, and an
identity provider account the provider no longer vouches for are told so (ephemeral) and nothing is recorded.

The broker here signs people in through an identity provider on a closed loopback port: a re-check that is due
finds it unreachable, which is what a provider outage looks like."""
from datetime import timedelta

import pytest

from app import contract
from app.auth import oidc, oidc_client, steps
from app.chat import outbox
from app.models import Account, Configuration, Decision, Task, utcnow
from app.settings import Settings
from tests import factories
from tests.chat.conftest import SIGNING_SECRET, button, submission

ISSUER = "http://127.0.0.1:9/realms/corp"
OIDC_SETTINGS = {"oidc_issuer": ISSUER, "oidc_client_id": "broker", "oidc_approver_groups": "jit-approvers",
                 "oidc_admin_groups": "jit-admins"}

pytestmark = pytest.mark.usefixtures("posted")


@pytest.fixture
def app_settings(fake_slack):
    return {"slack_bot_token": fake_slack.token, "slack_signing_secret": SIGNING_SECRET,
            "slack_channel": fake_slack.channel, "slack_api_url": fake_slack.url,
            "public_url": "https://jit.example.com", "require_mfa_for_admins": True, **OIDC_SETTINGS}


def _settings():
    return Settings.load(environ={}, overrides=OIDC_SETTINGS)


def _provider_person(fake_slack, checked_minutes_ago=0, email_verified=True, login="pat"):
    """A person the provider signed in (their tokens kept, checked `checked_minutes_ago`), known to Slack by e-mail."""
    account = oidc.sign_in_account({"iss": ISSUER, "sub": f"sub-{login}", "preferred_username": login,
                                    "email": f"{login.title()}@corp.example", "email_verified": email_verified,
                                    "groups": ["jit-approvers"]}, _settings())
    oidc_client.store_tokens(account, {"refresh_token": "r"})
    Account.update(idp_checked_at=utcnow() - timedelta(minutes=checked_minutes_ago)).where(
        Account.id == account.id).execute()
    fake_slack.add_user(f"U0{login.upper()}", f"{login}@corp.example")
    return Account.get_by_id(account.id)


def _ephemeral(fake_slack):
    return [call.arguments["text"] for call in fake_slack.calls_to("chat.postEphemeral")]


def _refused(interact, fake_slack, user_id):
    """Click Approve as `user_id`: no modal opens; the ephemeral message says why."""
    assert interact(button(fake_slack, user_id, "approve")).status_code == 200
    assert fake_slack.views == []
    assert Decision.select().count() == 0
    return _ephemeral(fake_slack)[-1]


def test_an_approver_owing_the_password_change_an_admin_set_is_refused(interact, fake_slack, slack_approver):
    Account.update(must_change_password=True).where(Account.id == slack_approver.id).execute()
    assert steps.STEP_MESSAGES[steps.CHANGE_PASSWORD] in _refused(interact, fake_slack, "U0JCHEN")


def test_an_admin_owing_the_second_factor_the_settings_require_is_refused(interact, fake_slack):
    admin = factories.account("root", contract.ROLE_ADMIN)
    Account.update(email="root@corp.example").where(Account.id == admin.id).execute()
    fake_slack.add_user("U0ROOT", "root@corp.example")
    assert steps.STEP_MESSAGES[steps.ENROL_SECOND_FACTOR] in _refused(interact, fake_slack, "U0ROOT")


def test_a_local_approver_is_refused_while_local_sign_in_is_for_admins_only(interact, fake_slack, slack_approver):
    Configuration.default()
    Configuration.update(local_sign_in_admins_only=True).execute()
    assert steps.MSG_LOCAL_ADMINS_ONLY in _refused(interact, fake_slack, "U0JCHEN")


def test_a_modal_opened_before_the_switch_records_nothing_after_it(interact, fake_slack, slack_approver):
    assert interact(button(fake_slack, "U0JCHEN", "approve")).status_code == 200
    view = fake_slack.views[-1]
    Configuration.default()
    Configuration.update(local_sign_in_admins_only=True).execute()
    answer = interact(submission(view, "U0JCHEN", "Needed for the release", "once"))
    assert steps.MSG_LOCAL_ADMINS_ONLY in answer.json["view"]["blocks"][0]["text"]["text"]
    assert Decision.select().count() == 0


def test_a_person_the_provider_re_check_removed_from_the_groups_decides_nothing(interact, fake_slack):
    """The re-check (a session's, within half the idle time) found no group: Slack stops at once too, though the
    last check is recent."""
    pat = _provider_person(fake_slack)
    assert not oidc.apply_recheck(pat, {"sub": pat.idp_subject, "groups": ["finance"]}, _settings())
    assert steps.MSG_NOT_VOUCHED in _refused(interact, fake_slack, "U0PAT")


def test_past_the_idle_time_without_the_providers_word_nobody_decides(interact, fake_slack):
    """[session] idle_minutes is 30: the provider (unreachable) has not vouched for pat for 31 minutes."""
    _provider_person(fake_slack, checked_minutes_ago=31)
    assert steps.MSG_NOT_VOUCHED in _refused(interact, fake_slack, "U0PAT")


def test_a_person_signed_out_of_every_session_has_nothing_vouching_for_them(interact, fake_slack):
    pat = _provider_person(fake_slack)
    assert oidc_client.forget_unused_tokens(pat.id) == 1  # what signing out of the last session does
    assert steps.MSG_NOT_VOUCHED in _refused(interact, fake_slack, "U0PAT")


def test_a_person_whose_browser_session_timed_out_still_decides_while_the_provider_vouches(
        interact, fake_slack, caplog):
    """A time-out is no sign-out: the tokens stay, the re-check that is due is asked of the provider (unreachable
    here, so its answer of 20 minutes ago stands until the idle time), and the decision is recorded."""
    pat = _provider_person(fake_slack, checked_minutes_ago=20)
    factories.browser_session(pat, idle_minutes=31)
    interact(button(fake_slack, "U0PAT", "approve"))
    interact(submission(fake_slack.views[-1], "U0PAT", "Needed for the release", "once"))
    assert Decision.get().decided_by == "pat"
    assert "could not re-check pat" in caplog.text  # the provider was asked
    assert Account.get_by_id(pat.id).idp_tokens


def test_a_person_signing_in_through_the_identity_provider_is_mapped_by_the_e_mail_it_verified(
        interact, fake_slack):
    _provider_person(fake_slack)
    interact(button(fake_slack, "U0PAT", "approve"))
    interact(submission(fake_slack.views[-1], "U0PAT", "Needed for the release", "once"))
    assert Decision.get().decided_by == "pat"


def test_an_e_mail_the_identity_provider_has_not_verified_maps_nobody(interact, fake_slack):
    _provider_person(fake_slack, email_verified=False)
    assert "not linked to a JIT Broker account" in _refused(interact, fake_slack, "U0PAT")


def test_an_admin_access_approval_needing_step_up_links_to_the_ticket_page(make_ticket, interact, fake_slack):
    Task.delete().execute()
    fake_slack.messages.clear()
    task = make_ticket(factories.admin_request())
    outbox.send_due()
    _provider_person(fake_slack)
    interact(button(fake_slack, "U0PAT", "approve"))
    view = fake_slack.views[-1]
    assert not [block for block in view["blocks"] if block["type"] == "input"]
    assert "fresh sign-in" in view["blocks"][0]["text"]["text"]
    assert view["blocks"][1]["elements"][0]["url"] == f"https://jit.example.com/tickets/{task.number}"
    assert Decision.select().count() == 0
