"""Browser sessions: the idle and absolute time-outs, and a cookie rewritten only when the session changes."""
import re
import time

import pytest

from app import contract
from app.auth import sessions
from tests import factories
from tests.webclient import WebClient

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(app, username):
    """A browser signed in as `username`; each request gets its own app context, as in production."""
    browser = WebClient(app.test_client())
    assert browser.sign_in(username).status_code == 302
    return browser


@pytest.fixture
def admin_client(app, admin):
    return sign_in(app, admin.username)


def test_a_session_ends_after_the_idle_time_out(app, admin_client, monkeypatch):
    assert admin_client.get("/tickets").status_code == 200
    now = time.time()
    monkeypatch.setattr(sessions.time, "time", lambda: now + 31 * 60)
    answer = admin_client.get("/tickets")
    assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]


def test_a_used_session_survives_past_the_idle_time_out_but_not_the_absolute_one(app, admin_client, monkeypatch):
    start = time.time()
    for minutes in range(20, 12 * 60, 20):
        monkeypatch.setattr(sessions.time, "time", lambda minutes=minutes: start + minutes * 60)
        assert admin_client.get("/tickets").status_code == 200, minutes
    monkeypatch.setattr(sessions.time, "time", lambda: start + 12 * 3600 + 60)
    assert admin_client.get("/tickets").status_code == 302


def test_the_cookie_is_rewritten_only_when_the_session_changes(app, admin_client, monkeypatch):
    """Pages in quick succession carry no Set-Cookie; the idle stamp is renewed at most every 30 s."""
    admin_client.get("/tickets")
    assert "Set-Cookie" not in admin_client.get("/tickets").headers
    now = time.time()
    monkeypatch.setattr(sessions.time, "time", lambda: now + 45)
    renewed = admin_client.get("/tickets")
    assert renewed.status_code == 200 and "session=" in renewed.headers["Set-Cookie"]
    assert "Set-Cookie" not in admin_client.get("/tickets").headers


@pytest.mark.parametrize("app_settings", [{"session_idle_minutes": 5, "session_max_hours": 1}])
def test_time_outs_are_configurable(app, monkeypatch):
    factories.account("short", contract.ROLE_USER)
    client = sign_in(app, "short")
    now = time.time()
    monkeypatch.setattr(sessions.time, "time", lambda: now + 6 * 60)
    assert client.get("/tickets").status_code == 302
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 3600


def test_background_polling_does_not_keep_an_idle_session_alive(app, admin_client, monkeypatch):
    start = time.time()
    polling = {"HX-Request": "true", sessions.BACKGROUND_HEADER: "1"}
    for minutes in (10, 20, 29):
        monkeypatch.setattr(sessions.time, "time", lambda minutes=minutes: start + minutes * 60)
        assert admin_client.get("/tickets", headers=polling).status_code == 200
    monkeypatch.setattr(sessions.time, "time", lambda: start + 31 * 60)
    assert admin_client.get("/tickets", headers=polling).status_code == 401


def test_moving_the_epoch_ends_the_session_and_a_new_sign_in_opens_one(app, admin, admin_client):
    assert admin_client.get("/tickets").status_code == 200
    with app.app_context():
        sessions.end_all_sessions(admin)
    assert admin_client.get("/tickets").status_code == 302
    assert admin_client.sign_in(admin.username).status_code == 302
    assert admin_client.get("/tickets").status_code == 200


def test_signing_out_after_the_idle_time_out_still_ends_a_copy_of_the_cookie(app, as_approver):
    with as_approver.client.session_transaction() as session:
        stolen = dict(session)
    copy = WebClient(app.test_client())
    with copy.client.session_transaction() as session:
        session.update(stolen)
    token = _TOKEN.search(as_approver.get("/tickets").get_data(as_text=True)).group(1)
    with as_approver.client.session_transaction() as session:
        session[sessions.SEEN] -= 31 * 60
    signed_out = as_approver.request("POST", "/sign-out", data={"csrf_token": token})
    assert signed_out.status_code == 302
    assert copy.get("/tickets").status_code != 200, "the copy of the cookie still opens the ticket list"


def test_a_session_found_past_its_idle_time_out_loses_its_record(app, approver, as_approver):
    """Ended by the time-out, not by sign-out: a copy of the cookie whose idle stamp is newer opens nothing."""
    with as_approver.client.session_transaction() as session:
        stolen = dict(session)
        session[sessions.SEEN] -= 31 * 60
    assert as_approver.get("/tickets").status_code == 302
    copy = WebClient(app.test_client())
    with copy.client.session_transaction() as session:
        session.update(stolen)
    assert copy.get("/tickets").status_code == 302
    with app.test_request_context():
        assert [record for record in sessions.live_sessions() if record.account_id == approver.id] == []
