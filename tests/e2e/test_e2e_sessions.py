"""Sessions end on the server, tried as an attacker would against a running broker.

The attacker holds a copy of an admin's session cookie (taken from a shared machine, a proxy
log, a stolen laptop). After sign-out, a password reset, deactivation, a role change, the idle
time-out and an admin's "End sessions", replaying that copy must open neither an admin page
nor the JSON API (tickets, audit log).
"""
import re
import time

import pytest
import requests

from app import contract
from app.audit.models import AuditEntry
from app.models import Account
from app.web.users import USER_SESSION_END, USER_SESSIONS_END
from tests import factories
from tests.live import LiveServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
API = contract.API_PREFIX


@pytest.fixture
def server(app, database_url, admin):
    factories.account("victim", contract.ROLE_ADMIN)
    with LiveServer(database_url, workers=2) as live:
        yield live


def _sign_in(server, username, user_agent=None):
    browser = requests.Session()
    if user_agent:
        browser.headers["User-Agent"] = user_agent
    page = browser.get(f"{server.url}/sign-in", timeout=30).text
    answer = browser.post(f"{server.url}/sign-in", timeout=30, allow_redirects=False, data={
        "csrf_token": _TOKEN.search(page).group(1), "username": username, "password": factories.PASSWORD})
    assert answer.status_code == 302 and "/sign-in" not in answer.headers["Location"], answer.text
    return browser


def _post(browser, server, path, **fields):
    """A form post as the page's own form makes it (its CSRF token read from the page)."""
    token = _TOKEN.search(browser.get(f"{server.url}/admin/users", timeout=30).text).group(1)
    return browser.post(f"{server.url}{path}", timeout=30, allow_redirects=False,
                        data={"csrf_token": token, **fields})


def _opens(server, cookies, path):
    """Whether the copied cookie alone opens `path` (a page redirects to sign-in, the API answers 401)."""
    answer = requests.get(f"{server.url}{path}", cookies=cookies, timeout=30, allow_redirects=False)
    assert answer.status_code in (200, 302, 401, 403), (path, answer.status_code)
    return answer.status_code == 200


def _copied_cookie(server):
    """The victim signs in; the attacker copies the cookie, which works for now."""
    browser = _sign_in(server, "victim")
    copy = browser.cookies.get_dict()
    assert _opens(server, copy, "/admin/users") and _opens(server, copy, f"{API}/tickets")
    return browser, copy


def _assert_refused(server, copy, pages=("/admin/users", "/tickets")):
    for path in (*pages, f"{API}/tickets", f"{API}/audit"):
        assert not _opens(server, copy, path), f"the copied cookie still opens {path}"


def _victim_id():
    return Account.by_username("victim").id


def test_a_copied_cookie_is_refused_after_sign_out(server):
    browser, copy = _copied_cookie(server)
    token = _TOKEN.search(browser.get(f"{server.url}/tickets", timeout=30).text).group(1)

    assert browser.post(f"{server.url}/sign-out", data={"csrf_token": token}, timeout=30,
                        allow_redirects=False).status_code == 302

    _assert_refused(server, copy)


def test_signing_out_on_one_device_leaves_the_other_signed_in(server):
    other_device = _sign_in(server, "victim")
    browser, copy = _copied_cookie(server)
    token = _TOKEN.search(browser.get(f"{server.url}/tickets", timeout=30).text).group(1)

    browser.post(f"{server.url}/sign-out", data={"csrf_token": token}, timeout=30, allow_redirects=False)

    _assert_refused(server, copy)
    assert _opens(server, other_device.cookies.get_dict(), "/admin/users")


def test_a_copied_cookie_is_refused_after_an_admin_resets_the_password(server):
    _browser, copy = _copied_cookie(server)
    admin = _sign_in(server, "root")

    assert _post(admin, server, f"/admin/users/{_victim_id()}/password", confirmed="yes").status_code == 200

    _assert_refused(server, copy)


def test_a_copied_cookie_is_refused_after_deactivation(server):
    _browser, copy = _copied_cookie(server)
    admin = _sign_in(server, "root")

    assert _post(admin, server, f"/admin/users/{_victim_id()}/active", active="false",
                 confirmed="yes").status_code == 302

    _assert_refused(server, copy)


def test_a_copied_cookie_is_refused_after_a_role_change(server):
    _browser, copy = _copied_cookie(server)
    admin = _sign_in(server, "root")

    assert _post(admin, server, f"/admin/users/{_victim_id()}/role", role=contract.ROLE_USER).status_code == 302

    # Not a 403 for the admin page only: the session itself is over, pages a user may open included.
    _assert_refused(server, copy)


def test_a_copied_cookie_is_refused_after_an_admin_ends_the_sessions(server):
    browser, copy = _copied_cookie(server)
    admin = _sign_in(server, "root")
    path = f"/admin/users/{_victim_id()}/sessions/end"

    asked = _post(admin, server, path)
    assert asked.status_code == 200 and "End every session of victim?" in asked.text
    assert _opens(server, copy, "/admin/users"), "asking is not ending"
    assert _post(admin, server, path, confirmed="yes").status_code == 302

    _assert_refused(server, copy)
    _assert_refused(server, browser.cookies.get_dict())
    assert _opens(server, admin.cookies.get_dict(), "/admin/users"), "the admin's own session goes on"
    ended = AuditEntry.get(AuditEntry.action == USER_SESSIONS_END)
    assert (ended.actor, ended.object_id) == ("root", "victim")


def _session_rows(admin, server):
    """(account, user agent, the End form's path) of each session the users page lists."""
    page = admin.get(f"{server.url}/admin/users", timeout=30).text
    table = page[page.index("Signed-in sessions"):]
    return re.findall(r'<th scope="row">(\w+)[^<]*</th>.*?class="user-agent">([^<]*)</td>.*?action="([^"]+/end)"',
                      table, re.S)


def test_admins_see_each_session_and_end_one_while_the_others_go_on(server):
    laptop = _sign_in(server, "victim", user_agent="Laptop-Browser/1.0")
    phone = _sign_in(server, "victim", user_agent="Phone-Browser/2.0")
    admin = _sign_in(server, "root")

    rows = _session_rows(admin, server)

    assert {(name, agent) for name, agent, _path in rows} >= {("victim", "Laptop-Browser/1.0"),
                                                              ("victim", "Phone-Browser/2.0")}
    assert "127.0.0.1" in admin.get(f"{server.url}/admin/users", timeout=30).text
    laptop_end = next(path for name, agent, path in rows if agent == "Laptop-Browser/1.0")
    for copy in (laptop, phone):  # the opaque id in the cookie names nothing on the page
        assert copy.cookies["session"] not in admin.get(f"{server.url}/admin/users", timeout=30).text

    assert _post(admin, server, laptop_end).status_code == 302

    _assert_refused(server, laptop.cookies.get_dict())
    assert _opens(server, phone.cookies.get_dict(), "/tickets") and _opens(server, phone.cookies.get_dict(),
                                                                           f"{API}/tickets")
    assert "Laptop-Browser/1.0" not in [agent for _name, agent, _path in _session_rows(admin, server)]
    ended = AuditEntry.get(AuditEntry.action == USER_SESSION_END)
    assert (ended.actor, ended.object_id) == ("root", "victim")


def test_signed_out_and_ended_sessions_leave_the_list(server):
    browser = _sign_in(server, "victim", user_agent="Shared-Kiosk/1.0")
    admin = _sign_in(server, "root")
    assert "Shared-Kiosk/1.0" in [agent for _name, agent, _path in _session_rows(admin, server)]
    token = _TOKEN.search(browser.get(f"{server.url}/tickets", timeout=30).text).group(1)

    browser.post(f"{server.url}/sign-out", data={"csrf_token": token}, timeout=30)

    assert "Shared-Kiosk/1.0" not in [agent for _name, agent, _path in _session_rows(admin, server)]


@pytest.fixture
def impatient_server(app, database_url, admin, tmp_path):
    """A broker whose sessions end after any idle second ([session] idle_minutes = 0)."""
    factories.account("victim", contract.ROLE_ADMIN)
    config = tmp_path / "jitbroker.toml"
    config.write_text("[session]\nidle_minutes = 0\n")
    with LiveServer(database_url, workers=2, env={"JITBROKER_CONFIG": str(config)}) as live:
        yield live


def test_a_copied_cookie_is_refused_past_the_idle_time_out(impatient_server):
    server = impatient_server
    copy = _sign_in(server, "victim").cookies.get_dict()
    signed_in_at = time.time()

    wait_until(lambda: time.time() - signed_in_at > 2, timeout=10, interval=0.2, message="two idle seconds")

    _assert_refused(server, copy)
