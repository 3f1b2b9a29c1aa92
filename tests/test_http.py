"""Security headers on every HTML answer, and X-Forwarded-* only from trusted proxies."""
import pytest

from app import create_app, http
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
