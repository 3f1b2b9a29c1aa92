"""Nobody gets in where they don't belong: every route of the app, walked from its URL map,
tried as anonymous, `api`, `user`, `admin` and a deactivated user.

A view declares who may call it (`required_roles`, set by `require_roles` and
`require_page_roles`); only the routes in PUBLIC_PATHS may go without. A new route
without a rule fails `test_every_route_declares_its_roles`.
"""
import re

import pytest
from werkzeug.routing.converters import AnyConverter, IntegerConverter

from app import contract
from app.auth.basic import forget_accounts
from app.models import Account
from tests import factories
from tests.conftest import basic_auth

# Routes no account calls: each request proves where it comes from with a signature (Slack's, with the signing
# secret), and anything else gets 401, whoever is signed in.
SIGNED_PATHS = {"/integrations/slack/interactions"}
# The trip to the identity provider and back: a redirect, and a page refusing an answer nobody asked for
# (tests/browser/test_browser_oidc.py follows them through).
PROVIDER_PATHS = {"/sign-in/oidc", "/sign-in/oidc/callback"}
# Routes anyone may call: probes, assets, signing in (its second step too) and out, the API description.
PUBLIC_PATHS = {"/healthz", "/readyz", "/metrics", "/static/<path:filename>", "/sign-in", "/sign-in/code",
                "/sign-out", *PROVIDER_PATHS, "/openapi.json"}
# Public, but only after a right password in the same browser: anyone else is sent to sign in.
AFTER_A_PASSWORD = {"/sign-in/code"}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
ROLES = ("anonymous", contract.ROLE_API, contract.ROLE_USER, contract.ROLE_ADMIN, "deactivated")

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

# Figures for docs/security.md.
CHECKED = {"requests": 0}


def routes(app):
    """(rule, method) for every route, without HEAD/OPTIONS, which Flask answers itself."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint)):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method


def required_roles(app, rule):
    return getattr(app.view_functions[rule.endpoint], "required_roles", None)


class Caller:
    """A test client acting as one role: a browser session for people, Basic credentials for everyone."""

    def __init__(self, app, headers=None, address="127.0.0.1"):
        self.client = app.test_client()
        self.headers = headers or {}
        # One address per caller, so the deactivated caller's failures (throttled per
        # address) do not lock the others out.
        self.address = address

    def open(self, method, path, **kwargs):
        # A fresh app context per request, as in production, so `g` never leaks between requests.
        with self.client.application.app_context():
            answer = self.client.open(path, method=method, headers={**self.headers, **kwargs.pop("headers", {})},
                                      environ_base={"REMOTE_ADDR": self.address}, **kwargs)
        answer.get_data()
        answer.close()  # static files stream from an open file
        return answer

    def token(self):
        page = self.open("GET", "/sign-in", follow_redirects=True).get_data(as_text=True)
        match = _TOKEN.search(page)
        return match.group(1) if match else ""

    def sign_in(self, username):
        answer = self.open("POST", "/sign-in", data={"csrf_token": self.token(), "username": username,
                                                     "password": factories.PASSWORD})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return self


@pytest.fixture
def world(app, deliver):
    """A ticket, an account to act on, and one caller per role."""
    answer = deliver(factories.application_request())
    number = answer.json["result"]["ticket"]
    target = factories.account("target", contract.ROLE_USER)
    factories.account("jchen", contract.ROLE_USER)
    factories.account("root", contract.ROLE_ADMIN)
    factories.account("gone", contract.ROLE_USER)
    callers = {
        "anonymous": Caller(app, address="192.0.2.1"),
        contract.ROLE_API: Caller(app, basic_auth("epm", factories.PASSWORD), "192.0.2.2"),
        contract.ROLE_USER: Caller(app, basic_auth("jchen", factories.PASSWORD), "192.0.2.3").sign_in("jchen"),
        contract.ROLE_ADMIN: Caller(app, basic_auth("root", factories.PASSWORD), "192.0.2.4").sign_in("root"),
        "deactivated": Caller(app, basic_auth("gone", factories.PASSWORD), "192.0.2.5").sign_in("gone"),
    }
    # Deactivated after signing in: the open session and the Basic credentials must both stop working.
    Account.update(active=False).where(Account.username == "gone").execute()
    forget_accounts()  # a direct UPDATE: the broker's own paths forget cached accounts themselves
    return {"number": number, "account_id": target.id, "callers": callers}


def url_for_rule(rule, world):
    values = {}
    for name, converter in rule._converters.items():
        if isinstance(converter, AnyConverter):
            values[name] = sorted(converter.items)[0] if hasattr(converter, "items") else "approve"
        elif isinstance(converter, IntegerConverter):
            values[name] = world["account_id"]
        elif name == "filename":
            values[name] = "style.css"
        else:
            values[name] = world.get(name, world["number"])
    return rule.build(values, append_unknown=False)[1]


def is_refused(answer):
    if answer.status_code in (401, 403, 429):
        return True
    return answer.status_code in (301, 302, 303) and "/sign-in" in answer.headers.get("Location", "")


def test_every_route_declares_its_roles(app):
    undeclared = [f"{method} {rule.rule} ({rule.endpoint})" for rule, method in routes(app)
                  if required_roles(app, rule) is None and rule.rule not in PUBLIC_PATHS | SIGNED_PATHS]
    assert undeclared == [], "routes without a role rule; wrap them in require_roles or require_page_roles"
    declared_public = [rule.rule for rule, _ in routes(app)
                       if rule.rule in PUBLIC_PATHS and required_roles(app, rule) is not None]
    assert declared_public == []


def test_every_role_gets_exactly_the_routes_it_is_allowed(app, world):
    wrong = []
    for rule, method in routes(app):
        allowed = required_roles(app, rule)
        if allowed is None:
            continue
        path = url_for_rule(rule, world)
        for role in ROLES:
            caller = world["callers"][role]
            data = {"csrf_token": caller.token()} if method in STATE_CHANGING else None
            try:
                answer = caller.open(method, path, data=data)
            except Exception as error:  # the test app re-raises what production answers with a 500
                wrong.append(f"{role} {method} {path}: {error!r}")
                continue
            CHECKED["requests"] += 1
            expected_in = role in allowed
            if answer.status_code >= 500:
                wrong.append(f"{role} {method} {path}: {answer.status_code}")
            elif expected_in == is_refused(answer):
                wrong.append(f"{role} {method} {path}: {answer.status_code} {answer.headers.get('Location', '')}")
    assert wrong == [], "\n".join(wrong)


def test_signed_routes_refuse_every_role_without_a_signature(app, world):
    for rule, method in routes(app):
        if rule.rule in SIGNED_PATHS:
            assert required_roles(app, rule) is None
            for role in ROLES:
                answer = world["callers"][role].open(method, url_for_rule(rule, world), data={"payload": "{}"})
                assert answer.status_code == 401, f"{role} {method} {rule.rule}: {answer.status_code}"


def test_public_routes_answer_anonymous_visitors(app, world):
    anonymous = world["callers"]["anonymous"]
    for rule, method in routes(app):
        if rule.rule in PUBLIC_PATHS - PROVIDER_PATHS and method == "GET":
            answer = anonymous.open("GET", url_for_rule(rule, world))
            if rule.rule in AFTER_A_PASSWORD:
                assert is_refused(answer), rule.rule
                continue
            # Readiness may honestly answer 503 (no scheduler in a test); what matters is nobody is turned away.
            assert answer.status_code in (200, 503) and not is_refused(answer), rule.rule


def test_every_state_changing_browser_route_needs_a_csrf_token(app, world):
    """A signed-in admin's browser, tricked into posting without the token, changes nothing.

    The answer must be the CSRF refusal (400), or 401 where the route takes only Basic
    credentials and so ignores the session cookie altogether: the webhook, the JSON API and the
    ServiceNow Batch API.
    """
    admin = world["callers"][contract.ROLE_ADMIN]
    admin.headers = {}  # the session cookie alone, as a forged cross-site form would carry
    wrong = []
    basic_only = []
    for rule, method in routes(app):
        if method not in STATE_CHANGING or rule.rule == "/sign-out":
            continue
        answer = admin.open(method, url_for_rule(rule, world), data={"state": "Closed", "work_note": "forged"})
        if answer.status_code == 401:
            basic_only.append(rule.rule)
        elif answer.status_code != 400 or "CSRF" not in answer.get_data(as_text=True):
            wrong.append(f"{method} {rule.rule}: {answer.status_code}")
    assert wrong == []
    assert all(path.startswith((contract.API_PREFIX, "/api/now/")) or path in SIGNED_PATHS for path in basic_only)
    assert contract.WEBHOOK_PATH in basic_only


def test_sign_out_needs_a_csrf_token(app, world):
    admin = world["callers"][contract.ROLE_ADMIN]
    assert admin.open("POST", "/sign-out").status_code == 400
    assert admin.open("GET", "/tickets").status_code == 200
