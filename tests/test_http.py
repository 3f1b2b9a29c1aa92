"""Security headers on every HTML answer, session time-outs, and X-Forwarded-* only from trusted proxies."""
import time

import pytest

from app import contract, create_app
from app.auth import sessions
from app import http
from tests import factories
from tests.webclient import WebClient
PAGES = ["/sign-in", "/tickets", "/admin/users", "/admin/configuration", "/tickets/NOPE0000001"]


def sign_in(app, username):
    """A browser signed in as `username`; each request gets its own app context, as in production."""
    browser = WebClient(app.test_client())
    assert browser.sign_in(username).status_code == 302
    return browser


@pytest.fixture
def admin_client(app, admin):
    return sign_in(app, admin.username)


def test_every_html_page_carries_the_security_headers(app, admin_client):
    anonymous = app.test_client()
    for client in (anonymous, admin_client):
        for path in PAGES:
            answer = client.get(path)
            if answer.mimetype != "text/html":
                continue
            csp = answer.headers["Content-Security-Policy"]
            assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["Referrer-Policy"]
            assert "Strict-Transport-Security" not in answer.headers  # plain HTTP: HSTS would be ignored


def test_hsts_over_https(app, admin_client):
    answer = admin_client.get("/tickets", base_url="https://broker.example")
    assert answer.headers["Strict-Transport-Security"] == http.HSTS


def test_forwarded_proto_is_ignored_without_a_trusted_proxy(app, admin_client):
    answer = admin_client.get("/tickets", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in answer.headers


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


def test_time_outs_are_configurable(database_url, monkeypatch):
    app = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True,
                      "session_idle_minutes": 5, "session_max_hours": 1})
    with app.app_context():
        from app.db import database
        from app.migrations import upgrade
        with database.connection_context():
            upgrade()
            if not database_url.startswith("sqlite"):
                from tests.conftest import empty_tables
                empty_tables()
            factories.account("short", contract.ROLE_USER)
        client = sign_in(app, "short")
        now = time.time()
        monkeypatch.setattr(sessions.time, "time", lambda: now + 6 * 60)
        assert client.get("/tickets").status_code == 302
    assert app.config["PERMANENT_SESSION_LIFETIME"].total_seconds() == 3600


def _client_address_seen(app, **environ):
    seen = {}

    @app.get("/_test/address")
    def _address():
        from flask import request
        seen["address"], seen["secure"] = request.remote_addr, request.is_secure
        return "ok"

    app.test_client().get("/_test/address", headers={"X-Forwarded-For": "203.0.113.5",
                                                     "X-Forwarded-Proto": "https"},
                          environ_base={"REMOTE_ADDR": "10.0.0.1"})
    return seen


def test_x_forwarded_headers_are_ignored_by_default(database_url):
    app = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True})
    assert _client_address_seen(app) == {"address": "10.0.0.1", "secure": False}


def test_x_forwarded_headers_are_honoured_from_a_configured_proxy(database_url):
    app = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True, "trusted_proxies": 1})
    assert _client_address_seen(app) == {"address": "203.0.113.5", "secure": True}
