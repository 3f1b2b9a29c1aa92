"""Two-factor sign-in, tried against a running broker as its users and an attacker would.

The attacker knows the password (phished, reused): with a second factor enrolled it opens
nothing, not a page, not the JSON API with the half-finished session, not HTTP Basic. A code
seen once cannot be replayed; guessed codes meet the account's lock-out with wrong passwords.
Recovery codes work once each. The person turns it off with a current code; an admin resets it
for a lost phone. With `[accounts] require_mfa_for_admins`, an admin enrols before anything else.
"""
import html
import re
import time

import pyotp
import pytest
import requests

from app import contract
from app.audit.models import AuditEntry
from app import secrets
from app.auth import throttle, two_factor
from app.db import database
from app.models import Account
from app.web.users import USER_MFA_RESET
from tests import factories
from tests.conftest import basic_auth
from tests.live import LiveServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
_SECRET = re.compile(r'<code class="secret">([A-Z2-7]+)</code>')
_RECOVERY = re.compile(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>")
API = contract.API_PREFIX


@pytest.fixture
def server(app, database_url, approver, admin):
    with LiveServer(database_url, workers=2) as live:
        yield live


def _token(browser, server, page):
    return _TOKEN.search(browser.get(f"{server.url}{page}", timeout=30).text).group(1)


def _password_step(server, username, password=factories.PASSWORD, browser=None):
    browser = browser or requests.Session()
    answer = browser.post(f"{server.url}/sign-in", timeout=30, allow_redirects=False, data={
        "csrf_token": _token(browser, server, "/sign-in"), "username": username, "password": password})
    return browser, answer


def _code_step(browser, server, code):
    return browser.post(f"{server.url}/sign-in/code", timeout=30, allow_redirects=False,
                        data={"csrf_token": _token(browser, server, "/sign-in/code"), "code": code})


def _next_code(secret):
    """A code for a time step no code was used for yet: the broker accepts the steps either side of now
    (clock drift) but each once, so take the oldest unused one, waiting for time to move only if none is left."""
    totp = pyotp.TOTP(secret)
    last = Account.get(Account.totp_enabled_at.is_null(False)).totp_last_step
    wait_until(lambda: totp.timecode(time.time()) + 1 > last, timeout=65, interval=0.2, message="a fresh TOTP step")
    return totp.generate_otp(max(totp.timecode(time.time()) - 1, last + 1))


def _enrolled(server, username):
    """`username` signs in and enrols an app; returns (browser, secret, recovery codes)."""
    browser, answer = _password_step(server, username)
    assert answer.status_code == 302
    page = browser.get(f"{server.url}/account/two-factor", timeout=30).text
    secret = _SECRET.search(page).group(1)
    assert f"otpauth://totp/JIT%20Broker:{username}?secret={secret}" in html.unescape(page)
    assert 'src="data:image/svg+xml;base64,' in page
    turned_on = browser.post(f"{server.url}/account/two-factor", timeout=30, data={
        "csrf_token": _token(browser, server, "/account/two-factor"), "code": pyotp.TOTP(secret).now(),
        "current_password": factories.PASSWORD})
    assert turned_on.status_code == 200, turned_on.text
    codes = _RECOVERY.findall(turned_on.text)
    assert len(codes) == two_factor.RECOVERY_CODES
    return browser, secret, codes


def _opens(server, cookies, path):
    return requests.get(f"{server.url}{path}", cookies=cookies, timeout=30, allow_redirects=False).status_code == 200


def test_after_enrolment_the_password_alone_opens_nothing(server, approver):
    _browser, secret, _codes = _enrolled(server, approver.username)
    stored = database.execute_sql(f"SELECT totp_secret FROM {Account._meta.table_name} WHERE id = {approver.id}")
    assert stored.fetchone()[0].startswith(secrets.PREFIX), "the secret is stored encrypted"

    browser, answer = _password_step(server, approver.username)

    assert answer.status_code == 302 and "/sign-in/code" in answer.headers["Location"]
    half = browser.cookies.get_dict()
    assert not _opens(server, half, "/tickets") and not _opens(server, half, f"{API}/tickets")
    basic = requests.get(f"{server.url}{API}/tickets", headers=basic_auth(approver.username, factories.PASSWORD),
                         timeout=30)
    assert basic.status_code == 403 and "second factor" in basic.text

    assert _code_step(browser, server, _next_code(secret)).status_code == 302
    assert _opens(server, browser.cookies.get_dict(), "/tickets")
    assert _opens(server, browser.cookies.get_dict(), f"{API}/tickets")


def test_a_code_is_accepted_once(server, approver):
    _browser, secret, _codes = _enrolled(server, approver.username)
    code = _next_code(secret)
    first, _ = _password_step(server, approver.username)
    assert _code_step(first, server, code).status_code == 302

    replay, _ = _password_step(server, approver.username)

    assert _code_step(replay, server, code).status_code == 401


def test_guessed_codes_meet_the_accounts_lock_out(server, approver):
    _browser, secret, _codes = _enrolled(server, approver.username)
    browser, _ = _password_step(server, approver.username)
    for guess in range(throttle.ACCOUNT_LIMIT):
        assert _code_step(browser, server, f"{guess:06d}").status_code == 401

    locked = _code_step(browser, server, _next_code(secret))

    assert locked.status_code == 429 and "try again after" in locked.text
    # One counter per account: the password door is locked too.
    assert _password_step(server, approver.username)[1].status_code == 429


def test_each_recovery_code_signs_in_once(server, approver):
    _browser, _secret, codes = _enrolled(server, approver.username)
    browser, _ = _password_step(server, approver.username)

    assert _code_step(browser, server, codes[0].upper()).status_code == 302
    assert "9 are left" in browser.get(f"{server.url}/tickets", timeout=30).text

    again, _ = _password_step(server, approver.username)
    assert _code_step(again, server, codes[0]).status_code == 401
    assert _code_step(again, server, codes[1]).status_code == 302


def test_the_person_turns_it_off_with_a_current_code_only(server, approver):
    browser, secret, _codes = _enrolled(server, approver.username)

    def turn_off(code):
        return browser.post(f"{server.url}/account/two-factor/off", timeout=30, allow_redirects=False, data={
            "csrf_token": _token(browser, server, "/account/two-factor"), "code": code})

    assert turn_off("000000").status_code == 400
    assert turn_off(_next_code(secret)).status_code == 302

    assert _password_step(server, approver.username)[1].headers["Location"].endswith("/tickets")
    assert AuditEntry.select().where(AuditEntry.action == "user_mfa_disable").count() == 1


def test_an_admin_resets_a_lost_phone(server, approver, admin):
    victim_browser, _secret, _codes = _enrolled(server, approver.username)
    admin_browser, _ = _password_step(server, admin.username)
    path = f"/admin/users/{approver.id}/two-factor/reset"
    page = admin_browser.get(f"{server.url}/admin/users", timeout=30).text
    assert path in page

    answer = admin_browser.post(f"{server.url}{path}", timeout=30, allow_redirects=False, data={
        "csrf_token": _TOKEN.search(page).group(1), "confirmed": "yes"})

    assert answer.status_code == 302
    assert not _opens(server, victim_browser.cookies.get_dict(), "/tickets"), "their sessions end"
    assert _password_step(server, approver.username)[1].headers["Location"].endswith("/tickets")
    reset = AuditEntry.get(AuditEntry.action == USER_MFA_RESET)
    assert (reset.actor, reset.object_id) == (admin.username, approver.username)


@pytest.fixture
def strict_server(app, database_url, approver, admin, tmp_path):
    config = tmp_path / "jitbroker.toml"
    config.write_text("[accounts]\nrequire_mfa_for_admins = true\n")
    with LiveServer(database_url, workers=2, env={"JITBROKER_CONFIG": str(config)}) as live:
        yield live


def test_with_the_setting_an_admin_enrols_before_anything_else(strict_server, admin, approver):
    server = strict_server
    browser, answer = _password_step(server, admin.username)
    assert answer.status_code == 302

    for page in ("/tickets", "/admin/users", "/admin/configuration"):
        sent = browser.get(f"{server.url}{page}", timeout=30, allow_redirects=False)
        assert sent.status_code == 302 and sent.headers["Location"].endswith("/account/two-factor"), page
    assert requests.get(f"{server.url}{API}/tickets", cookies=browser.cookies.get_dict(),
                        timeout=30).status_code == 403
    assert requests.get(f"{server.url}{API}/tickets", headers=basic_auth(admin.username, factories.PASSWORD),
                        timeout=30).status_code == 403
    # An approver is not asked to.
    assert _opens(server, _password_step(server, approver.username)[0].cookies.get_dict(), "/tickets")

    page = browser.get(f"{server.url}/account/two-factor", timeout=30).text
    secret = _SECRET.search(page).group(1)
    browser.post(f"{server.url}/account/two-factor", timeout=30, data={
        "csrf_token": _TOKEN.search(page).group(1), "code": pyotp.TOTP(secret).now(),
        "current_password": factories.PASSWORD})

    assert _opens(server, browser.cookies.get_dict(), "/admin/users")
