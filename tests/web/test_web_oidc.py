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
    from datetime import timedelta

    from app.models import Account, utcnow
    account = factories.account("bo", contract.ROLE_USER)
    Account.update(idp_issuer=ISSUER, idp_subject="u-2", idp_tokens='{"refresh_token": "r"}',
                   idp_checked_at=utcnow() - timedelta(minutes=checked_minutes_ago)).where(
        Account.id == account.id).execute()
    return Account.get_by_id(account.id)


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
    assert not still_vouched_for(Account.get_by_id(account.id))
    assert "their session ends" in caplog.text


def test_a_recent_check_is_not_repeated(app, caplog):
    from app.auth.oidc_client import still_vouched_for
    assert still_vouched_for(_provider_account(checked_minutes_ago=5))
    assert "could not re-check" not in caplog.text  # the provider was not asked
