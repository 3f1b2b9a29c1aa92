"""The headers, the size limit and the CSV export, tried as an attacker would against a running broker.

Authenticated answers must not be kept by a browser or proxy cache, no answer may be
sniffed into another type, a body over the limit is refused (413) however it is sent
and nothing of it is stored, and a user name typed on the sign-in form cannot become
a formula in a spreadsheet opening the audit export.
"""
import base64
import csv
import io
import json
import re
import socket

import pytest
import requests

from app import contract
from app.models import Decision, IncomingRequest, Task
from tests import factories
from tests.conftest import WEBHOOK
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

FORMULA = '=HYPERLINK("http://evil","x")'
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def server(app, database_url, api_account, admin):
    with LiveServer(database_url, workers=1) as live:
        yield live


def _sign_in(server, username, password=factories.PASSWORD):
    """A requests session that posted the sign-in form as a browser does, with its answer."""
    browser = requests.Session()
    page = browser.get(f"{server.url}/sign-in", timeout=30).text
    answer = browser.post(f"{server.url}/sign-in", timeout=30, allow_redirects=False,
                          data={"csrf_token": _TOKEN.search(page).group(1), "username": username, "password": password})
    return browser, answer


def _chunked_post(server, path, body, username):
    """POST `body` with Transfer-Encoding: chunked (no Content-Length) on a raw socket; the answer's status and body."""
    credentials = base64.b64encode(f"{username}:{factories.PASSWORD}".encode()).decode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {credentials}\r\n"
                            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                           .encode())
        try:
            for start in range(0, len(body), 64 * 1024):
                chunk = body[start:start + 64 * 1024]
                connection.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the broker may answer and close before reading the rest: the answer is what counts
        answer = b""
        while part := connection.recv(64 * 1024):
            answer += part
    head, _, content = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(content)


def _over_the_limit(app, document):
    """`document` as JSON padded (inside a string) to one byte over the body limit."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    text = json.dumps({**document, "padding": ""})
    return text.replace('"padding": ""', '"padding": "' + "x" * (limit + 1 - len(text)) + '"').encode()


def test_answers_for_a_session_or_basic_credentials_are_not_stored(server, admin):
    browser, signed_in = _sign_in(server, admin.username)
    assert signed_in.status_code == 302
    answers = [browser.get(f"{server.url}{path}", timeout=30)
               for path in ("/tickets", "/admin/users", "/admin/audit", "/api/x_bets_pmc_jit/tickets")]
    answers.append(requests.get(f"{server.url}/api/x_bets_pmc_jit/tickets", timeout=30,
                                auth=(admin.username, factories.PASSWORD)))
    for answer in answers:
        assert answer.status_code == 200, answer.url
        assert answer.headers["Cache-Control"] == "no-store", answer.url
        assert answer.headers["X-Content-Type-Options"] == "nosniff", answer.url


def test_json_answers_are_never_sniffed(server):
    for answer in (requests.get(f"{server.url}/healthz", timeout=30),
                   requests.get(f"{server.url}/api/x_bets_pmc_jit/tickets", timeout=30)):
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_a_chunked_delivery_over_the_limit_is_413_and_stored_without_its_body(app, server, api_account):
    status, answer = _chunked_post(server, WEBHOOK, _over_the_limit(app, factories.application_request()),
                                   api_account.username)

    assert status == 413
    assert answer["error"]["detail"] == f"The body is larger than the {app.config['MAX_CONTENT_LENGTH']} byte limit"
    # As for an announced body over the limit: the refusal is recorded, the body is not.
    [row] = IncomingRequest.select()
    assert row.status == contract.INCOMING_ERROR
    assert row.raw_body is None
    assert "limit" in row.error
    assert Task.select().count() == 0


def test_a_chunked_decision_over_the_limit_is_413_and_changes_nothing(app, server, api_account, admin):
    delivered = requests.post(server.url + WEBHOOK, json=factories.application_request(), timeout=30,
                              auth=(api_account.username, factories.PASSWORD))
    assert delivered.status_code == 200
    task = Task.get()
    body = _over_the_limit(app, {"decision": "Approved", "reason": "looks fine"})

    status, answer = _chunked_post(server, f"{contract.API_PREFIX}/tickets/{task.number}/decision", body,
                                   admin.username)

    assert status == 413
    assert answer["error"]["message"] == "Payload too large"
    assert Decision.select().count() == 0
    assert Task.get().state == task.state


def test_a_formula_typed_as_a_user_name_is_neutralized_in_the_csv_export(server, runner):
    _browser, refused = _sign_in(server, FORMULA, password="wrong")
    assert refused.status_code == 401

    result = runner.invoke(args=["audit", "export", "--format", "csv"])

    assert result.exit_code == 0, result.output
    [row] = [row for row in csv.DictReader(io.StringIO(result.output)) if row["action"] == "sign_in_failed"]
    assert row["actor"] == "'" + FORMULA
    assert row["object_id"] == "'" + FORMULA
