"""Signing in and out, the session cookie, CSRF, and who may open which page."""
import re

import pytest
from flask import session

from app import create_app
from app.auth import sessions
from app.auth.accounts import set_password
from app.models import Account
from tests import factories

PAGES = ("/", "/tickets", "/admin/configuration", "/admin/users")
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def signed_in(web):
    """True when the browser's session opens the ticket list, False when it is sent to sign in."""
    answer = web.get("/tickets")
    assert answer.status_code in (200, 302), answer.status_code
    return answer.status_code == 200


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_page_request_redirects_to_sign_in(web, path):
    response = web.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")


def test_sign_in_redirect_comes_back_to_the_page_asked_for(web, approver):
    response = web.get("/tickets?state=New")
    assert response.headers["Location"] == "/sign-in?next=/tickets?state%3DNew"
    response = web.sign_in(approver.username, next="/tickets?state=New")
    assert response.headers["Location"] == "/tickets?state=New"


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example",
                                    "/\t/evil.example", "/\n/evil.example", "/\t/[x", "/\r/[::1"])
def test_sign_in_never_redirects_off_site(web, approver, target):
    assert web.get("/sign-in", query_string={"next": target}).status_code == 200
    response = web.sign_in(approver.username, next=target)
    assert response.headers["Location"] == "/tickets"


def test_approver_signs_in_and_sees_tickets(web, approver):
    response = web.sign_in(approver.username)
    assert response.status_code == 302
    page = web.get("/tickets")
    assert page.status_code == 200
    assert "jchen" in page.get_data(as_text=True)


def test_wrong_password_is_refused(web, approver):
    response = web.sign_in(approver.username, password="not-the-password")
    assert response.status_code == 401
    assert "Invalid user name or password" in response.get_data(as_text=True)
    assert not signed_in(web)


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(web):
    response = web.sign_in("nobody")
    assert response.status_code == 401
    assert "Invalid user name or password" in response.get_data(as_text=True)


def test_api_account_cannot_sign_in_and_is_told_why_only_after_its_right_password(web, api_account):
    response = web.sign_in(api_account.username)
    assert response.status_code == 401
    assert "This account&#39;s role (api) is for EPM&#39;s deliveries: it cannot sign in here." in (
        response.get_data(as_text=True))
    assert not signed_in(web)

    wrong = web.sign_in(api_account.username, password="not-the-password")
    assert wrong.status_code == 401
    assert "Invalid user name or password" in wrong.get_data(as_text=True)
    assert "role (api)" not in wrong.get_data(as_text=True)


def test_inactive_account_cannot_sign_in(web, app):
    factories.account("gone", "user", active=False)
    response = web.sign_in("gone")
    assert response.status_code == 401
    assert not signed_in(web)


def test_sign_in_starts_a_new_session(web, approver):
    web.get("/sign-in")
    with web.client.session_transaction() as session:
        session["planted"] = "by an attacker"
        anonymous_token = session["csrf_token"]
    web.sign_in(approver.username)
    first = web.session()
    assert "planted" not in first
    assert "csrf_token" not in first
    assert first["nonce"]
    web.get("/tickets")
    assert web.session()["csrf_token"] != anonymous_token
    web.post("/sign-out")
    web.sign_in(approver.username)
    assert web.session()["nonce"] != first["nonce"]


def test_sign_out_ends_the_session(as_approver):
    response = as_approver.post("/sign-out")
    assert response.status_code == 302
    assert not signed_in(as_approver)


def test_sign_out_needs_a_post_with_a_token(as_approver):
    assert as_approver.get("/sign-out").status_code == 405
    assert as_approver.request("POST", "/sign-out").status_code == 400
    assert as_approver.get("/tickets").status_code == 200


def test_sign_out_from_a_page_opened_before_a_password_change_signs_out(as_approver):
    page = as_approver.get("/tickets").get_data(as_text=True)
    token_in_tab_a = _TOKEN.search(page).group(1)
    changed = as_approver.post("/account/password", {"current_password": factories.PASSWORD,
                                                     "new_password": "a-new-password-1",
                                                     "new_password_again": "a-new-password-1"})
    assert changed.status_code == 302
    assert signed_in(as_approver)
    answer = as_approver.request("POST", "/sign-out", data={"csrf_token": token_in_tab_a})
    body = answer.get_data(as_text=True)
    offered = _TOKEN.search(body)
    assert offered and 'action="/sign-out"' in body, f"Sign out answered {answer.status} and offered no way out"
    assert "Sign out?" in body and answer.headers["Cache-Control"] == "no-store"
    assert signed_in(as_approver), "the out-of-date form alone signs nobody out"
    assert as_approver.request("POST", "/sign-out", data={"csrf_token": offered.group(1)}).status_code == 302
    assert not signed_in(as_approver)


def test_sign_out_from_a_page_opened_before_signing_out_elsewhere_says_so(as_approver):
    token_in_tab_a = _TOKEN.search(as_approver.get("/tickets").get_data(as_text=True)).group(1)
    assert as_approver.post("/sign-out").status_code == 302
    answer = as_approver.request("POST", "/sign-out", data={"csrf_token": token_in_tab_a})
    assert answer.status_code == 302 and answer.headers["Location"] == "/sign-in"
    assert "You are signed out." in as_approver.get("/sign-in").get_data(as_text=True)


def test_other_forms_with_an_out_of_date_token_are_still_refused(web, approver):
    stale = web.token()
    assert web.sign_in(approver.username).status_code == 302
    answer = web.request("POST", "/sign-in", data={"csrf_token": stale, "username": approver.username,
                                                   "password": factories.PASSWORD})
    assert answer.status_code == 400 and "CSRF" in answer.get_data(as_text=True)


def test_deactivated_account_loses_its_session(as_approver, approver):
    approver.active = False
    approver.save()
    assert as_approver.get("/tickets").status_code == 302


def test_deleted_account_loses_its_session(as_approver, approver):
    Account.delete().where(Account.id == approver.id).execute()
    assert not signed_in(as_approver)


def test_password_reset_ends_sessions_opened_with_the_old_password(as_approver, approver):
    set_password(approver, "a-brand-new-password")
    assert as_approver.get("/tickets").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(web, approver):
    response = web.sign_in(approver.username)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_when_served_over_https(database_url):
    app = create_app({"database_url": database_url, "secret_key": "k", "public_url": "https://jit.example.com",
                      "TESTING": True})
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_post_without_csrf_token_is_refused(web, approver):
    response = web.request("POST", "/sign-in", data={"username": approver.username, "password": factories.PASSWORD})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    assert not signed_in(web)


def test_post_with_a_forged_csrf_token_is_refused(as_approver, application_ticket):
    response = as_approver.request("POST", f"/tickets/{application_ticket.number}/notes",
                                   data={"csrf_token": "forged", "work_note": "hello"})
    assert response.status_code == 400


def test_webhook_needs_no_csrf_token(deliver):
    assert deliver(factories.admin_request()).status_code == 200


def test_api_role_is_forbidden_on_pages(app, web, api_account):
    # The api account cannot sign in; even a session made for it opens no page.
    with app.test_request_context():
        sessions.start_session(api_account)
        made = dict(session)
    with web.client.session_transaction() as planted:
        planted.update(made)
    for path in ("/tickets", "/admin/users"):
        assert web.get(path).status_code == 403


@pytest.mark.parametrize("path", ["/admin/configuration", "/admin/users"])
def test_admin_pages_are_forbidden_for_users(as_approver, path):
    response = as_approver.get(path)
    assert response.status_code == 403


def test_pages_carry_security_headers(as_approver):
    response = as_approver.get("/tickets")
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("field", ["username", "password"])
def test_a_nul_character_in_a_form_is_a_clear_400(web, approver, field):
    # PostgreSQL refuses NUL in any text, even to compare it; the form is refused, not failed.
    values = {"username": approver.username, "password": factories.PASSWORD}
    values[field] = "jc\x00hen"
    response = web.sign_in(values["username"], values["password"])
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert not signed_in(web)
