"""Security headers on every HTML answer, and X-Forwarded-* only from trusted proxies."""
import io
import json

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


def test_json_answers_carry_nosniff_and_no_store(app, client, admin_auth):
    for answer in (client.get("/api/x_bets_pmc_jit/tickets", headers=admin_auth), client.get("/healthz"),
                   client.get("/api/x_bets_pmc_jit/tickets")):
        assert answer.mimetype == "application/json"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == http.NO_STORE


def test_pages_for_a_signed_in_account_are_not_stored(admin_client):
    for path in PAGES:
        answer = admin_client.get(path)
        assert answer.headers["Cache-Control"] == http.NO_STORE, path


def test_static_files_keep_their_caching(admin_client):
    answer = admin_client.get("/static/style.css")
    answer.close()
    assert answer.status_code == 200
    assert answer.headers.get("Cache-Control") != http.NO_STORE
    assert answer.headers["X-Content-Type-Options"] == "nosniff"


def _chunked(client, path, body, auth):
    """`body` as gunicorn hands a chunked request on: no Content-Length, a stream the server ends."""
    return client.post(path, input_stream=io.BytesIO(body), headers={**auth, "Transfer-Encoding": "chunked",
                                                                     "Content-Type": "application/json"},
                       environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})


def test_a_chunked_body_over_the_limit_is_refused_with_413(app, client, admin_auth):
    limit = app.config["MAX_CONTENT_LENGTH"]
    answer = _chunked(client, "/api/x_bets_pmc_jit/tickets/NOPE0000001/decision", b"x" * (limit + 1), admin_auth)

    assert answer.status_code == 413
    assert answer.get_json()["error"]["detail"] == f"The body is larger than the {limit} byte limit"


def test_a_chunked_body_at_the_limit_reaches_the_view_whole(app, client, admin_auth):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = json.dumps({"decision": "Approved", "reason": ""}).encode()
    body += b" " * (limit - len(body))
    answer = _chunked(client, "/api/x_bets_pmc_jit/tickets/NOPE0000001/decision", body, admin_auth)

    assert answer.status_code == 404  # the body was read as JSON; the ticket does not exist


def test_an_announced_body_over_the_limit_is_refused_before_the_view(app, client, admin_auth):
    limit = app.config["MAX_CONTENT_LENGTH"]
    answer = client.post("/api/x_bets_pmc_jit/tickets/NOPE0000001/decision", data=b"x" * (limit + 1),
                         headers=admin_auth, content_type="application/json")

    assert answer.status_code == 413


def test_forms_may_lead_to_the_identity_provider_only_when_it_is_configured(database_url):
    """Chromium holds the redirects after a form post (sign-out, step-up) to form-action: the issuer's origin only."""
    plain = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True})
    assert "form-action 'self';" in plain.test_client().get("/sign-in").headers["Content-Security-Policy"]
    with_provider = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True,
                                "oidc_issuer": "https://login.example.com/tenant/v2.0", "oidc_client_id": "b"})
    csp = with_provider.test_client().get("/sign-in").headers["Content-Security-Policy"]
    assert "form-action 'self' https://login.example.com;" in csp


def test_forms_may_lead_to_the_providers_own_sign_in_and_sign_out_origins_once_discovery_names_them(
        database_url, monkeypatch):
    """A provider may serve its authorization and end-session endpoints away from the issuer (Cognito's hosted UI):
    the page of someone who signs in there reads the discovery document, and its forms may lead to both."""
    import responses

    from app.db import database
    from app.migrations import upgrade
    from app.models import Account

    issuer = "https://cognito-idp.example.com/pool-1"
    app = create_app({"database_url": database_url, "secret_key": "k", "TESTING": True, "oidc_issuer": issuer,
                      "oidc_client_id": "b", "oidc_approver_groups": "approvers"})
    with app.app_context(), responses.RequestsMock() as provider:
        provider.get(f"{issuer}/.well-known/openid-configuration", json={
            "issuer": issuer, "authorization_endpoint": "https://login.example.com/oauth2/authorize",
            "end_session_endpoint": "https://logout.example.net/logout", "jwks_uri": f"{issuer}/jwks"})
        with database.connection_context():
            upgrade()
            person = Account.create(username="pat", role="user", password_hash="!", idp_issuer=issuer,
                                    idp_subject="00u1")
        with app.test_request_context("/tickets"):
            from flask import g
            g.account = person
            policy = http._page_policy()
        assert len(provider.calls) == 1
        with app.test_request_context("/sign-in"):
            unchanged = http._page_policy()  # nobody signed in: no discovery needed, what was read is kept

    for csp in (policy, unchanged):
        assert ("form-action 'self' https://cognito-idp.example.com https://login.example.com "
                "https://logout.example.net;") in csp


@pytest.mark.parametrize("method, path", [
    ("GET", "/admin/policies/rules/{id}"),
    ("POST", "/admin/policies/rules/{id}/delete"),
    ("POST", "/admin/policies/rules/{id}/move"),
    ("POST", "/admin/users/{id}/role"),
    ("POST", "/admin/users/{id}/active"),
    ("POST", "/admin/users/1/sessions/{id}/end"),
])
def test_an_id_beyond_what_a_row_can_have_is_404_not_500(app, admin_client, method, path):
    # The largest id a row can have, then one past it (beyond PostgreSQL's bigint and SQLite's INTEGER).
    for row_id in (2 ** 63 - 1, 2 ** 63, 10 ** 20):
        url = path.format(id=row_id)
        answer = admin_client.get(url) if method == "GET" else admin_client.post(url, {"role": "user"})
        assert answer.status_code == 404, (url, answer.status_code)
