"""The sign-in page's provider button, the local sign-in switch, and the callback's refusals (never a 500).

The whole trip through a real provider is in tests/browser/test_browser_oidc.py; these answers need none:
a provider that cannot be reached (a closed loopback port) changes nothing in them."""
import logging
import time

import pytest

from app import contract
from app.models import Configuration
from app.web import oidc as oidc_pages
from tests import factories
from tests.webclient import WebClient

ISSUER = "http://127.0.0.1:9/realms/corp"


@pytest.fixture
def app_settings():
    return {"oidc_issuer": ISSUER, "oidc_client_id": "broker", "oidc_approver_groups": "jit-approvers",
            "oidc_button_label": "Corp SSO", "public_url": "https://jit.example.com"}


def _with_pending(web, state, started=None, **entry):
    with web.client.session_transaction() as session:
        session[oidc_pages.PENDING] = {state: {"nonce": "n", "code_verifier": "v", "next": None,
                                               "started": started or int(time.time()), **entry}}


def test_the_sign_in_page_offers_the_provider_beside_the_local_form(web):
    page = web.get("/sign-in?next=/tickets/INC0010001").get_data(as_text=True)
    assert "Sign in with Corp SSO" in page
    assert 'href="/sign-in/oidc?next=/tickets/INC0010001"' in page
    assert 'name="password"' in page


def test_local_sign_in_can_be_kept_for_admins_only(web):
    factories.account("jchen", contract.ROLE_USER)
    factories.account("root", contract.ROLE_ADMIN)
    Configuration.default()
    Configuration.update(local_sign_in_admins_only=True).execute()
    refused = web.sign_in("jchen")
    assert refused.status_code == 401
    assert "Local sign-in is for admins only: use &#34;Sign in with Corp SSO&#34;" in refused.get_data(as_text=True)
    assert web.sign_in("root").status_code == 302


@pytest.mark.parametrize("query", ["", "?code=abc", "?code=abc&state=never-issued"])
def test_an_answer_with_a_state_this_browser_never_got_is_refused(web, caplog, query):
    caplog.set_level(logging.WARNING, logger="app.web.oidc")
    answer = web.get(f"/sign-in/oidc/callback{query}")
    assert answer.status_code == 400
    assert "already used, or was not meant for this browser" in answer.get_data(as_text=True)
    assert "identity provider sign-in refused (replayed)" in caplog.text
    assert "abc" not in caplog.text  # the code is never logged


def test_an_answer_after_the_sign_in_time_is_refused_as_expired(web, caplog):
    _with_pending(web, "s1", started=int(time.time()) - 601)
    answer = web.get("/sign-in/oidc/callback?code=abc&state=s1")
    assert answer.status_code == 400 and "This sign-in took too long" in answer.get_data(as_text=True)
    assert "(expired)" in caplog.text
    assert web.get("/sign-in/oidc/callback?code=abc&state=s1").status_code == 400  # and it is gone


def test_the_providers_error_is_shown_and_logged(web, caplog):
    _with_pending(web, "s2")
    answer = web.get("/sign-in/oidc/callback?error=access_denied&error_description=User+cancelled&state=s2")
    assert answer.status_code == 400
    assert "The identity provider refused the sign-in" in answer.get_data(as_text=True)
    assert "access_denied: User cancelled" in caplog.text


def test_an_answer_naming_another_issuer_is_refused(web, caplog):
    _with_pending(web, "s3")
    answer = web.get("/sign-in/oidc/callback?code=abc&state=s3&iss=https://evil.example")
    assert answer.status_code == 400 and "could not be verified" in answer.get_data(as_text=True)


def test_a_provider_that_cannot_be_reached_gets_a_page_not_a_500(web):
    answer = web.get("/sign-in/oidc")
    assert answer.status_code == 502
    assert "The identity provider cannot be reached" in answer.get_data(as_text=True)
    _with_pending(web, "s4")
    assert web.get("/sign-in/oidc/callback?code=abc&state=s4").status_code == 400


def test_the_configuration_page_shows_the_uris_to_register(as_admin):
    page = as_admin.get("/admin/configuration").get_data(as_text=True)
    assert "https://jit.example.com/sign-in/oidc/callback" in page
    assert "https://jit.example.com/sign-in" in page and ISSUER in page


def test_without_an_issuer_there_is_no_provider_button(database_url):
    from app import create_app
    app = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True})
    page = WebClient(app.test_client()).get("/sign-in").get_data(as_text=True)
    assert "Sign in with" not in page
    assert app.test_client().get("/sign-in/oidc").status_code == 302


def test_the_users_page_offers_no_password_reset_for_a_provider_account(as_admin):
    from app.auth import oidc
    from app.settings import Settings
    settings = Settings.load(environ={}, overrides={"oidc_issuer": ISSUER, "oidc_client_id": "broker",
                                                    "oidc_approver_groups": "jit-approvers"})
    account = oidc.sign_in_account({"iss": ISSUER, "sub": "u-1", "preferred_username": "bo",
                                    "groups": ["jit-approvers"]}, settings)
    page = as_admin.get("/admin/users").get_data(as_text=True)
    assert "Reset password of bo" not in page and "Signs in through the identity provider" in page
    refused = as_admin.post(f"/admin/users/{account.id}/password", {"confirmed": "yes"})
    assert refused.status_code == 400 and "has no local password" in refused.get_data(as_text=True)


def _provider_account(checked_minutes_ago):
    return factories.provider_account("bo", ISSUER, "u-2", checked_minutes_ago)


def test_an_unreachable_provider_is_asked_again_until_the_idle_time_has_passed(app, caplog):
    """[session] idle_minutes is 30: re-checked after 15 minutes; unanswered for 30, the session ends."""
    from app.auth.oidc_client import still_vouched_for
    from app.models import Account
    account = _provider_account(checked_minutes_ago=20)
    assert still_vouched_for(account)
    assert Account.get_by_id(account.id).idp_checked_at == account.idp_checked_at  # asked again next time
    assert "asked again later" in caplog.text
    late = Account.get_by_id(account.id)
    Account.update(idp_checked_at=late.idp_checked_at.replace(year=2020)).where(Account.id == late.id).execute()
    assert not still_vouched_for(Account.get_by_id(account.id))  # within the minute's rest: not asked again
    assert "their session ends" in caplog.text


def test_a_recent_check_is_not_repeated(app, caplog):
    from app.auth.oidc_client import still_vouched_for
    assert still_vouched_for(_provider_account(checked_minutes_ago=5))
    assert "could not re-check" not in caplog.text  # the provider was not asked


def _admins_only():
    Configuration.default()
    Configuration.update(local_sign_in_admins_only=True).execute()


@pytest.mark.parametrize("path", [f"{contract.API_PREFIX}/tickets", "/api/now/table/incident"])
def test_basic_refuses_a_local_approver_while_local_sign_in_is_for_admins_only(client, path):
    """The JSON API and the Table API: the switch closes HTTP Basic to a local non-admin as it closes the form."""
    from app.auth import steps
    from tests.conftest import basic_auth
    factories.account("jchen", contract.ROLE_USER)
    factories.account("root", contract.ROLE_ADMIN)
    factories.account("pam360", contract.ROLE_READER)
    assert client.get(path, headers=basic_auth("jchen", factories.PASSWORD)).status_code == 200
    _admins_only()
    refused = client.get(path, headers=basic_auth("jchen", factories.PASSWORD))
    assert refused.status_code == 403 and steps.MSG_LOCAL_ADMINS_ONLY in refused.get_data(as_text=True)
    assert client.get(path, headers=basic_auth("root", factories.PASSWORD)).status_code == 200
    if "table" in path:  # the reader machine account is never affected
        assert client.get(path, headers=basic_auth("pam360", factories.PASSWORD)).status_code == 200


def test_the_api_machine_account_keeps_delivering_while_local_sign_in_is_for_admins_only(client):
    from tests.conftest import WEBHOOK, basic_auth
    factories.account("epm", contract.ROLE_API)
    _admins_only()
    answer = client.post(WEBHOOK, json=factories.application_request(), headers=basic_auth("epm", factories.PASSWORD))
    assert answer.status_code in (200, 201)


def test_a_local_approvers_open_session_ends_when_local_sign_in_turns_to_admins_only(web):
    factories.account("jchen", contract.ROLE_USER)
    assert web.sign_in("jchen").status_code == 302
    assert web.get("/tickets").status_code == 200
    _admins_only()
    assert web.get("/tickets").status_code == 302  # to sign-in: the session is over
    assert web.get(f"{contract.API_PREFIX}/tickets").status_code == 401


def test_an_unreachable_provider_is_not_asked_again_for_a_minute(app, caplog):
    """An outage must not make every request of a provider user wait for it: one try, then RETRY_SECONDS' rest."""
    from app.auth import oidc_client
    account = _provider_account(checked_minutes_ago=20)
    assert oidc_client.still_vouched_for(account)
    assert caplog.text.count("could not re-check") == 1
    assert oidc_client.still_vouched_for(account)
    assert caplog.text.count("could not re-check") == 1  # not asked again within the minute
    app.extensions["oidc_retry_not_before"][account.id] -= oidc_client.RETRY_SECONDS
    assert oidc_client.still_vouched_for(account)
    assert caplog.text.count("could not re-check") == 2


def test_a_pages_own_polling_never_waits_for_the_provider(web, caplog):
    """A provider user's open page polls in the background: that request answers from the last check, past half
    the idle time too, and never asks the provider; the person's own click does."""
    from datetime import timedelta

    from app.auth.sessions import BACKGROUND_HEADER
    from app.models import Account, utcnow
    account = _provider_account(checked_minutes_ago=1)
    web.open_session(account, through_idp=True)
    assert web.get("/tickets").status_code == 200
    Account.update(idp_checked_at=utcnow() - timedelta(minutes=20)).where(Account.id == account.id).execute()
    polled = web.get("/tickets", headers={"HX-Request": "true", BACKGROUND_HEADER: "1"})
    assert polled.status_code == 200
    assert "could not re-check" not in caplog.text
    assert web.get("/tickets").status_code == 200
    assert "could not re-check" in caplog.text


def test_signing_out_of_the_last_session_forgets_the_providers_tokens(app, client):
    """The refresh token is kept only while a session may need the provider's re-check."""
    from app.models import Account
    account = _provider_account(checked_minutes_ago=1)
    laptop, phone = WebClient(client), WebClient(app.test_client())
    laptop.open_session(account, through_idp=True)
    phone.open_session(account, through_idp=True)
    assert laptop.post("/sign-out").status_code == 302
    assert Account.get_by_id(account.id).idp_tokens  # the phone's session still needs them
    assert phone.post("/sign-out").status_code == 302
    assert Account.get_by_id(account.id).idp_tokens is None


def test_signing_out_of_the_only_live_session_forgets_the_providers_tokens(app, client):
    """A session found past its idle limit is over, its record too: signing out of the only live one forgets the
    tokens, so Slack stops taking this person's decisions."""
    from app.auth import steps
    from app.models import Account
    account = _provider_account(checked_minutes_ago=1)
    phone, laptop = WebClient(app.test_client()), WebClient(client)
    phone.open_session(account, through_idp=True, idle_minutes=31)
    assert phone.get("/tickets").status_code == 302
    laptop.open_session(account, through_idp=True)
    assert laptop.get("/tickets").status_code == 200
    assert laptop.post("/sign-out").status_code == 302
    assert Account.get_by_id(account.id).idp_tokens is None
    assert steps.decider_refusal(Account.get_by_id(account.id)) is not None


def test_a_session_left_past_its_idle_limit_does_not_keep_the_providers_tokens(app, client):
    """A session nobody came back to after the idle limit keeps its record until someone does (or the
    `forget_ended_sessions` job drops it); signing out of the only live one still forgets the tokens."""
    from app.auth import steps
    from app.models import Account
    account = _provider_account(checked_minutes_ago=1)
    phone, laptop = WebClient(app.test_client()), WebClient(client)
    phone.open_session(account, through_idp=True, idle_minutes=31)
    laptop.open_session(account, through_idp=True)
    assert laptop.get("/tickets").status_code == 200
    assert laptop.post("/sign-out").status_code == 302
    assert Account.get_by_id(account.id).idp_tokens is None
    assert steps.decider_refusal(Account.get_by_id(account.id)) is not None
    assert phone.get("/tickets").status_code == 302


def test_access_ended_by_the_provider_forgets_its_tokens(app):
    from app.auth import oidc
    from app.models import Account
    account = _provider_account(checked_minutes_ago=1)
    oidc.end_access(account, "invalid_grant")
    assert Account.get_by_id(account.id).idp_tokens is None
