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
        session[oidc_pages.PENDING] = {state: {"nonce": "n", "code_verifier": "v", "started": started or int(time.time()),
                                               "next": None, **entry}}


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
