"""The JSON API's OpenAPI description (`GET /openapi.json`) is true, and the API keeps to it.

The description must list exactly the /api/ routes of the URL map with their methods and
roles. Then schemathesis runs against it in-process (the Flask app as a WSGI app, no
socket) with every one of its checks: no 5xx; status codes, headers and bodies as
described; data outside the description refused and data inside it accepted; undeclared
methods answered 405 with Allow; and every operation refusing requests without
credentials and with wrong ones. Requests carry the right role's Basic credentials:
`epm` (api) for the webhook, `root` (admin) for the rest.

SQLite gets every phase: the document's examples, the coverage phase's boundary, type
and missing-value cases (built while collecting), and fuzzing. PostgreSQL, where
stricter column types show, gets the examples and fuzzing. One broker per
backend serves all operations, as one deployment would.
"""
import itertools
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import ignored_auth

from app import contract, create_app
from app.auth.models import AuthFailure
from app.configuration import update_configuration
from app.db import database
from app.epm import tokens
from app.epm.fake import FakeEpm
from app.migrations import upgrade
from app.openapi.spec import OPERATIONS, build_spec
from app.logs import store as log_store
from tests import factories
from tests.conftest import BACKENDS, basic_auth, empty_tables

API_ROUTE = re.compile(r"^/api/")
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def _config(max_examples, coverage=True):
    return schemathesis.Config.from_dict({
        # Each operation's role: `epm` (api) for the webhook, `root` (admin) for the rest.
        "auth": {"basic": {"username": "root", "password": factories.PASSWORD}},
        "operations": [{"include-path": contract.WEBHOOK_PATH,
                        "auth": {"basic": {"username": "epm", "password": factories.PASSWORD}}}],
        "generation": {"max-examples": max_examples, "deterministic": True, "database": "none"},
        # Every check with its defaults; max_response_time has no default limit and stays off.
        "checks": {"enabled": True},
        "phases": {"coverage": {"enabled": coverage}},
    })


# Fuzzed examples per operation; the examples and coverage phases add their own fixed cases.
MAX_EXAMPLES = 20

# Figures for docs/security.md, per backend: requests sent, by status.
TRIED = {}
# (backend, operation) whose refusal of missing and wrong credentials ignored_auth has seen.
AUTH_CONFIRMED = set()

# A source address per request: failed-authentication throttling (tested in
# test_security_throttle.py) would otherwise lock the run out after its 20th probe with
# wrong credentials and turn every later answer into a 429.
_addresses = (f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in itertools.count(1))


def openapi_path(rule):
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)


def api_routes(app):
    """(OpenAPI path, lower-case method) -> endpoint, for every /api/ route of the URL map."""
    return {(openapi_path(rule), method.lower()): rule.endpoint
            for rule in app.url_map.iter_rules() if API_ROUTE.match(rule.rule)
            for method in rule.methods & METHODS}


@pytest.fixture(scope="module", params=BACKENDS)
def broker(request, tmp_path_factory):
    """One broker per backend for the whole module: accounts, a fake EPM on loopback to take
    decisions, and tickets of both kinds (INC0010001, the description's example, first; INC0010002
    revoked by EPM and holding a conflicting update)."""
    backend = request.param
    url = (f"sqlite:///{tmp_path_factory.mktemp('openapi')}/jitbroker.db" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    app = create_app({"database_url": url, "secret_key": "test-secret-key", "TESTING": True})
    with pytest.MonkeyPatch.context() as monkeypatch, app.app_context():
        monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
        tokens.clear_token_cache()
        with database.connection_context(), FakeEpm() as fake:
            upgrade()
            if backend != "sqlite":
                empty_tables()
            factories.account("epm", contract.ROLE_API)
            factories.account("root", contract.ROLE_ADMIN)
            update_configuration({"pmc_host": fake.url, "client_id": fake.client_id,
                                  "client_secret": fake.client_secret})
            webhook_auth = basic_auth("epm", factories.PASSWORD)
            client = app.test_client()
            admin = factories.admin_request()
            for body in (factories.application_request(), admin, factories.application_request(),
                         # INC0010002: approved, revoked in EPM, then an approval EPM does not send (a conflict).
                         factories.admin_decision(admin["RequestId"]), factories.admin_revocation(admin["RequestId"]),
                         factories.admin_decision(admin["RequestId"], DecisionTime="2026-11-20T15:30:00Z")):
                assert client.post(contract.WEBHOOK_PATH, json=body, headers=webhook_auth).status_code == 200
            yield {"app": app, "backend": backend}
        figures = TRIED.get(backend, {})
        print(f"\nschemathesis on {backend}: {sum(figures.values())} requests, by status {sorted(figures.items())}")
        tokens.clear_token_cache()
        # The app-log writer thread may still be storing a record a request logged.
        log_store.flush(5)
        database.close_all()


def test_the_description_lists_every_api_route_with_its_methods_and_no_other(broker):
    app = broker["app"]
    answer = app.test_client().get("/openapi.json")
    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.json == build_spec()
    described = {(path, method) for path, operations in answer.json["paths"].items() for method in operations}
    assert described == set(api_routes(app))


def test_each_described_operation_is_served_by_its_view_with_its_roles(broker):
    app = broker["app"]
    routes = api_routes(app)
    paths = app.test_client().get("/openapi.json").json["paths"]
    for (path, method), (endpoint, _operation) in OPERATIONS.items():
        assert routes[(path, method)] == endpoint, (path, method)
        roles = app.view_functions[endpoint].required_roles
        assert set(paths[path][method]["x-roles"]) == set(roles), (path, method)
        assert paths[path][method]["security"] == [{"basic": []}]


def test_the_description_is_a_valid_openapi_document(broker):
    # Loading validates the document against the OpenAPI 3.1 meta-schema.
    loaded = schemathesis.openapi.from_wsgi("/openapi.json", broker["app"], config=_config(1))
    assert loaded.raw_schema["openapi"] == "3.1.0"
    assert sum(1 for _ in loaded.get_all_operations()) == len(OPERATIONS)


def test_a_revoked_ticket_holding_a_conflict_keeps_to_its_description(broker):
    answer = broker["app"].test_client().get(f"{contract.API_PREFIX}/tickets/INC0010002",
                                             headers=basic_auth("root", factories.PASSWORD))
    assert answer.status_code == 200
    decision = answer.json["result"]["epm_decision"]
    assert (decision["decision"], decision["epm_outcome"], decision["conflict"]["decision"]) == (
        "Denied", "Revoked", "Approved")
    operation = schemathesis.openapi.from_dict(build_spec())[f"{contract.API_PREFIX}/tickets/{{number}}"]["GET"]
    operation.validate_response(answer)


# What schemathesis found answering 500 (PostgreSQL refuses NUL in any text, neither
# database takes a lone surrogate), and a repeated parameter the views read only once.
# The two pages (signed out: the refusal comes before sign-in) had the same 500.
REFUSED = [
    ("GET", "/api/x_bets_pmc_jit/tickets?request_id=%00", None),
    ("GET", "/api/x_bets_pmc_jit/tickets/INC%000010001", None),
    ("GET", "/api/x_bets_pmc_jit/audit?actor=%00", None),
    ("GET", "/api/now/table/incident?sysparm_query=number%3D%00", None),
    ("GET", "/api/x_bets_pmc_jit/audit?action=a&action=b", None),
    ("GET", "/admin/audit?actor=%00", None),  # pages too: PostgreSQL refuses NUL wherever it appears
    ("GET", "/tickets/INC%000010001", None),
    ("PATCH", "/api/x_bets_pmc_jit/tickets/INC0010001", '{"work_note": "a\\u0000b"}'),
    ("PATCH", "/api/x_bets_pmc_jit/tickets/INC0010001", '{"work_note": "a\\ud800b"}'),
    ("POST", "/api/x_bets_pmc_jit/tickets/INC0010001/decision", '{"decision": "Denied", "reason": "\\udfff"}'),
    ("GET", "/api/x_bets_pmc_jit/tickets?offset=9223372036854775808", None),
    ("PATCH", "/api/x_bets_pmc_jit/tickets/INC0010001", '{"work_note": null}'),
]


@pytest.mark.parametrize("method, path, body", REFUSED)
def test_what_no_database_can_take_is_a_clear_400(broker, method, path, body):
    answer = broker["app"].test_client().open(
        path, method=method, data=body, content_type="application/json",
        headers=basic_auth("root", factories.PASSWORD))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    if path.startswith("/api/"):
        assert answer.json["status"] == "failure"


def keeps_to_its_description(case, broker):
    """Send one generated case (with the operation's credentials, from the configuration) and run
    every check on the answer."""
    app, backend = broker["app"], broker["backend"]
    case.operation.schema.app = app  # so the checks' own probes reach this broker too
    # Like schemathesis's own runner, ignored_auth probes an operation without and with
    # wrong credentials until it has seen both refused once; each wrong password costs a
    # full scrypt check, so probing after every successful case would dominate the run.
    confirmed = (backend, case.operation.label) in AUTH_CONFIRMED
    answer = case.call_and_validate(app=app, environ_base={"REMOTE_ADDR": next(_addresses)},
                                    excluded_checks=[ignored_auth] if confirmed else None)
    if 200 <= answer.status_code < 300:
        AUTH_CONFIRMED.add((backend, case.operation.label))
    # The wrong credentials' name is the same on every probe, and a name's failures count from
    # every address (app/auth/throttle.py): forget them, or the 5th probe would meet a 429.
    AuthFailure.delete().execute()
    figures = TRIED.setdefault(backend, {})
    figures[answer.status_code] = figures.get(answer.status_code, 0) + 1


# The same document /openapi.json serves (the first test checks), with each backend's run size.
SPEC = build_spec()
on_sqlite = schemathesis.openapi.from_dict(SPEC, config=_config(MAX_EXAMPLES))
on_postgresql = schemathesis.openapi.from_dict(SPEC, config=_config(MAX_EXAMPLES, coverage=False))
# One broker serves an operation's cases, as a running deployment would.
RUN_SETTINGS = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                        deadline=None)


@on_sqlite.parametrize()
@pytest.mark.parametrize("broker", ["sqlite"], indirect=True)
@RUN_SETTINGS
def test_the_api_keeps_to_its_description_on_sqlite(case, broker):
    keeps_to_its_description(case, broker)


@on_postgresql.parametrize()
@pytest.mark.parametrize("broker", ["postgresql"], indirect=True)
@RUN_SETTINGS
def test_the_api_keeps_to_its_description_on_postgresql(case, broker):
    keeps_to_its_description(case, broker)
