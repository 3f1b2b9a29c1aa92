"""EpmClient against a `responses`-faked EPM: tokens, decision calls, reads, errors, the call log."""
import base64
import json
import logging
import socket
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from urllib3.exceptions import MaxRetryError, NameResolutionError

from app import contract
from app.epm import tokens
from app.epm.client import EpmClient
from app.epm.errors import (
    EpmAuthFailed, EpmConflictUnresolved, EpmDecidedOtherwise, EpmError, EpmForbidden, EpmRecordLags, EpmRejected,
    EpmRetryable, EpmUnreachable,
)
from tests import factories
from tests.epm.conftest import (
    ADMIN_LIST_URL, ADMIN_URL, APPLICATION_LIST_URL, APPLICATION_URL, CLIENT_ID, CLIENT_SECRET, EPM, TOKEN,
    TOKEN_URL, api_calls, token_answer, token_calls,
)
from tests.live import free_port

DECISION = {"status": "2000", "decision": "Approved", "itsmRequestId": "req-1"}


def configuration(**overrides):
    values = dict(pmc_host="acme-services.pm.beyondtrustcloud.com", client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  token_path=contract.EPM_TOKEN_PATH, application_decision_path=contract.EPM_APPLICATION_DECISION_PATH,
                  admin_decision_path=contract.EPM_ADMIN_DECISION_PATH, token_auth_method=contract.TOKEN_AUTH_POST,
                  token_scope="")
    values.update(overrides)
    return SimpleNamespace(**values)


# --- Tokens ---------------------------------------------------------------------------


def test_the_token_request_is_a_form_encoded_client_credentials_grant(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, json={})
    epm_client.send_application_decision(DECISION, "key-1")
    [call] = token_calls(epm_mock)
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(call.request.body, strict_parsing=True) == {
        "grant_type": ["client_credentials"], "client_id": [CLIENT_ID], "client_secret": [CLIENT_SECRET]}
    assert "Authorization" not in call.request.headers
    assert call.request.req_kwargs["timeout"] == 7


def test_two_calls_share_one_token_fetch(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, json={})
    before = tokens.token_fetch_count()
    epm_client.send_application_decision(DECISION, "key-1")
    epm_client.send_application_decision(DECISION, "key-2")
    assert len(token_calls(epm_mock)) == 1
    assert tokens.token_fetch_count() - before == 1
    assert [c.request.headers["Authorization"] for c in api_calls(epm_mock)] == [f"Bearer {TOKEN}"] * 2


def test_clients_with_the_same_credentials_share_the_token(epm_mock):
    epm_mock.post(APPLICATION_URL, json={})
    for key in ("key-1", "key-2", "key-3"):
        EpmClient.from_configuration(configuration()).send_application_decision(DECISION, key)
    assert len(token_calls(epm_mock)) == 1


def test_a_changed_secret_gets_a_token_of_its_own(epm_mock):
    epm_mock.post(APPLICATION_URL, json={})
    EpmClient.from_configuration(configuration()).send_application_decision(DECISION, "key-1")
    EpmClient.from_configuration(configuration(client_secret="new-secret")).send_application_decision(DECISION, "k2")
    assert len(token_calls(epm_mock)) == 2


def test_the_token_is_renewed_shortly_before_it_expires(epm_mock, epm_client, monkeypatch):
    epm_mock.post(APPLICATION_URL, json={})
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    epm_client.send_application_decision(DECISION, "key-1")
    now[0] += 3600 - tokens.RENEW_MARGIN_SECONDS - 1
    epm_client.send_application_decision(DECISION, "key-2")
    assert len(token_calls(epm_mock)) == 1
    now[0] += 2
    epm_client.send_application_decision(DECISION, "key-3")
    assert len(token_calls(epm_mock)) == 2


def test_a_401_fetches_a_new_token_once_and_retries_once(epm_mock, epm_client):
    epm_mock.replace("POST", TOKEN_URL, json=token_answer("old-token"))
    epm_mock.post(TOKEN_URL, json=token_answer("new-token"))
    epm_mock.post(APPLICATION_URL, status=401)
    epm_mock.post(APPLICATION_URL, json={})
    epm_client.send_application_decision(DECISION, "key-1")
    assert len(token_calls(epm_mock)) == 2
    assert [c.request.headers["Authorization"] for c in api_calls(epm_mock)] == ["Bearer old-token",
                                                                                 "Bearer new-token"]
    assert {c.request.headers[contract.IDEMPOTENCY_HEADER] for c in api_calls(epm_mock)} == {"key-1"}


def test_a_persistent_401_raises_auth_failed_after_exactly_two_token_fetches(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, status=401)
    before = tokens.token_fetch_count()
    with pytest.raises(EpmAuthFailed, match="client ID and client secret") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert tokens.token_fetch_count() - before == 2
    assert len(api_calls(epm_mock)) == 2
    assert (raised.value.status, raised.value.retryable) == (401, True)


def test_after_a_failed_refresh_the_next_call_asks_for_a_token_first(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, status=401)
    epm_mock.replace("POST", TOKEN_URL, json=token_answer())
    epm_mock.add("POST", TOKEN_URL, status=401, json={"error": "invalid_client"})
    with pytest.raises(EpmAuthFailed):
        epm_client.send_application_decision(DECISION, "key-1")
    with pytest.raises(EpmAuthFailed):
        epm_client.send_application_decision(DECISION, "key-1")
    assert len(api_calls(epm_mock)) == 1  # the refused token was not offered again


@pytest.mark.parametrize("status", [400, 401])
def test_refused_client_credentials_say_to_check_the_id_and_secret(epm_mock, epm_client, status):
    epm_mock.replace("POST", TOKEN_URL, status=status, json={"error": "invalid_client"})
    with pytest.raises(EpmAuthFailed, match="Check the client ID and client secret") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert api_calls(epm_mock) == []
    assert raised.value.status == status


def test_the_token_request_sends_the_scope_when_one_is_configured(epm_mock):
    epm_mock.post(APPLICATION_URL, json={})
    EpmClient.from_configuration(configuration(token_scope=contract.EPM_TOKEN_SCOPE)).send_application_decision(
        DECISION, "key-1")
    [call] = token_calls(epm_mock)
    assert parse_qs(call.request.body, strict_parsing=True) == {
        "grant_type": ["client_credentials"], "scope": ["urn:management:api"], "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET]}


def test_basic_client_authentication_when_configured_keeps_the_secret_out_of_the_body(epm_mock):
    epm_mock.post(APPLICATION_URL, json={})
    EpmClient.from_configuration(configuration(token_auth_method=contract.TOKEN_AUTH_BASIC)).send_application_decision(
        DECISION, "key-1")
    [call] = token_calls(epm_mock)
    expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"
    assert parse_qs(call.request.body, strict_parsing=True) == {"grant_type": ["client_credentials"]}


@pytest.mark.parametrize("method", contract.TOKEN_AUTH_METHODS)
def test_no_credential_reaches_the_log_even_at_debug_level(epm_mock, caplog, method):
    epm_mock.post(APPLICATION_URL, json={})
    with caplog.at_level(logging.DEBUG):
        EpmClient.from_configuration(configuration(token_auth_method=method)).send_application_decision(DECISION, "k")
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert caplog.records and not [text for text in (CLIENT_SECRET, basic, TOKEN) if text in caplog.text]


@pytest.mark.parametrize(("answer", "lifetime"), [
    ({"Scope": "urn:management:api", "expires_in": 1800}, 1800),
    ({"expires_in": "1800"}, 1800),
    ({"expires_in": "1800.0", "scope": "something:else"}, 1800),
    ({}, tokens.DEFAULT_LIFETIME_SECONDS),
    ({"expires_in": "soon"}, tokens.DEFAULT_LIFETIME_SECONDS),
])
def test_token_answers_as_epm_may_send_them_are_accepted_with_their_lifetime(epm_mock, monkeypatch, answer,
                                                                             lifetime):
    epm_mock.replace("POST", TOKEN_URL, json={"access_token": TOKEN, "token_type": "Bearer", **answer})
    epm_mock.post(APPLICATION_URL, json={})
    now = [1000.0]
    monkeypatch.setattr(tokens, "_clock", lambda: now[0])
    client = EpmClient.from_configuration(configuration(token_scope=contract.EPM_TOKEN_SCOPE))
    client.send_application_decision(DECISION, "key-1")
    now[0] += lifetime - tokens.RENEW_MARGIN_SECONDS - 1
    client.send_application_decision(DECISION, "key-2")
    assert len(token_calls(epm_mock)) == 1
    now[0] += 2
    client.send_application_decision(DECISION, "key-3")
    assert len(token_calls(epm_mock)) == 2
    assert {c.request.headers["Authorization"] for c in api_calls(epm_mock)} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize(("answer", "said", "hint"), [
    (dict(status=400, json={"error": "invalid_client", "error_description": f"bad secret {CLIENT_SECRET}"}),
     "(HTTP 400: invalid_client: bad secret ********)", "regenerating the secret in EPM invalidates the old one"),
    (dict(status=401, body="Unauthorized: " + "x" * 600, content_type="text/plain"),
     "(HTTP 401: Unauthorized: " + "x" * 486 + "… [114 more characters])", "Check the client ID and client secret"),
    (dict(status=400, json={"error": "invalid_scope"}), "(HTTP 400: invalid_scope)", "Check the Token Scope setting"),
])
def test_a_refused_token_request_says_what_epm_said_and_what_to_check(epm_mock, calls_log, caplog, answer, said,
                                                                      hint):
    epm_mock.replace("POST", TOKEN_URL, **answer)
    client = EpmClient(EPM, CLIENT_ID, CLIENT_SECRET, on_call=calls_log.append)
    with caplog.at_level(logging.INFO), pytest.raises(EpmAuthFailed) as raised:
        client.send_application_decision(DECISION, "key-1")
    message = str(raised.value)
    assert said in message and hint in message
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [message]
    assert calls_log[0]["error"] == message
    assert CLIENT_SECRET not in json.dumps(calls_log) + caplog.text


def test_a_refused_token_request_at_a_host_without_services_names_the_likely_host():
    host = "https://acme.pm.beyondtrustcloud.com"
    with responses.RequestsMock() as mock:
        mock.post(f"{host}/oauth/connect/token", status=400, json={"error": "invalid_client"})
        with pytest.raises(EpmAuthFailed, match="HTTP 400: invalid_client") as raised:
            EpmClient(host, CLIENT_ID, CLIENT_SECRET).test_connection()
    assert "did you mean 'acme-services.pm.beyondtrustcloud.com'" in str(raised.value)


def test_a_host_without_services_suffix_is_named_when_the_token_endpoint_is_missing():
    host = "https://acme.pm.beyondtrustcloud.com"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{host}/oauth/connect/token", status=404, body="<html>Not Found</html>")
        with pytest.raises(EpmRejected, match="-services suffix") as raised:
            EpmClient(host, CLIENT_ID, CLIENT_SECRET).test_connection()
    assert "acme-services.pm.beyondtrustcloud.com" in str(raised.value)


def test_a_token_answer_without_an_access_token_is_rejected(epm_mock, epm_client):
    epm_mock.replace("POST", TOKEN_URL, body="<html>portal sign-in</html>")
    with pytest.raises(EpmRejected, match="without a usable access token"):
        epm_client.send_application_decision(DECISION, "key-1")


@pytest.mark.parametrize(("elsewhere", "named"), [
    ("https://collector.example.net/steal", "collector.example.net"),
    ("http://collector.example.net/steal", "collector.example.net over plain http://"),
])
def test_a_redirected_token_request_never_carries_the_client_secret_to_another_host(calls_log, elsewhere, named):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, status=307, headers={"Location": elsewhere})
        mock.post(elsewhere, json=token_answer())
        mock.post(APPLICATION_URL, json={})
        client = EpmClient(EPM, CLIENT_ID, CLIENT_SECRET, timeout=7, on_call=calls_log.append)
        with pytest.raises(EpmRejected) as raised:
            client.send_application_decision(DECISION, "key-1")
        assert [call.request.body for call in mock.calls if call.request.url == elsewhere] == []
        assert api_calls(mock) == []
    message = str(raised.value)
    assert f"redirect (HTTP 307) to {named};" in message and "the client secret was not sent there" in message
    assert "Check the PMC Service Host Name" in message
    assert raised.value.status == 307 and not raised.value.retryable
    assert [(c["status"], c["error"]) for c in calls_log] == [(307, message)]
    assert CLIENT_SECRET not in json.dumps(calls_log) + message


def test_the_secret_is_never_sent_over_plain_http_to_another_machine():
    client = EpmClient("http://epm.example.org", CLIENT_ID, CLIENT_SECRET)
    with pytest.raises(EpmRejected, match="plain http://"):
        client.test_connection()


# --- Decision calls -------------------------------------------------------------------


def test_a_decision_is_posted_as_json_with_the_idempotency_key(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, json={"result": "ok"})
    assert epm_client.send_application_decision(DECISION, "d3c1s10n") == {"result": "ok"}
    [call] = api_calls(epm_mock)
    assert json.loads(call.request.body) == DECISION
    assert call.request.headers["Content-Type"] == "application/json"
    assert call.request.headers[contract.IDEMPOTENCY_HEADER] == "d3c1s10n"
    assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.request.req_kwargs["timeout"] == 7


def test_a_decision_carries_the_request_id_as_correlation_id_and_keeps_the_answered_one(epm_mock, epm_client,
                                                                                        calls_log):
    epm_mock.post(APPLICATION_URL, json={}, headers={"x-correlation-id": "epm-trace-7"})
    epm_mock.post(ADMIN_URL, body="")
    epm_client.send_application_decision(DECISION, "key-1")
    epm_client.send_admin_decision({"requestId": "adm-1", "decision": "Denied"}, "key-2")
    assert [c.request.headers["x-correlation-id"] for c in api_calls(epm_mock)] == ["req-1", "adm-1"]
    assert [(r["correlation_id"], r["answered_correlation_id"]) for r in calls_log] == [
        (None, None), ("req-1", "epm-trace-7"), ("adm-1", None)]


def test_an_admin_decision_goes_to_the_admin_route(epm_mock, epm_client):
    epm_mock.post(ADMIN_URL, body="")
    body = {"requestId": "adm-1", "decision": "Denied"}
    assert epm_client.send_admin_decision(body, "key-9") == {}
    [call] = api_calls(epm_mock)
    assert call.request.url == ADMIN_URL
    assert json.loads(call.request.body) == body


def test_configured_paths_replace_the_defaults(epm_mock):
    epm_mock.post(f"{EPM}/auth/token", json=token_answer("other"))
    epm_mock.post(f"{EPM}/management-api/v3/AuthorizationRequest/notification", json={})
    config = configuration(token_path="/auth/token",
                           application_decision_path="management-api/v3/AuthorizationRequest/notification")
    EpmClient.from_configuration(config).send_application_decision(DECISION, "key-1")
    assert [urlsplit(c.request.url).path for c in epm_mock.calls] == [
        "/auth/token", "/management-api/v3/AuthorizationRequest/notification"]


def application_record(status, **decided):
    """An AuthorizationRequest as §5.1 shows it (the decision's details are dagger keys)."""
    return {"id": "req-1", "requestInfo": {"user": "ACME\\jdoe", "created": "2026-11-22T05:00:00Z"},
            "serviceTicket": {}, "accessDecision": {"status": status, **decided}}


# ASP.NET Core's answer to a bare Conflict(): EPM documents no 409 body, and this one says nothing of why.
BARE_CONFLICT = {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.10", "title": "Conflict", "status": 409,
                 "traceId": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}


@pytest.mark.parametrize("answer", ['{"message": "Request already decided"}',
                                    '{"error": "This request has already been processed"}',
                                    json.dumps(BARE_CONFLICT), ""])
def test_a_409_counts_as_acknowledged_when_epm_s_record_shows_the_decision(
        epm_mock, epm_client, answer):
    epm_mock.post(APPLICATION_URL, status=409, body=answer)
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", json=application_record("Approved"))
    assert epm_client.send_application_decision(DECISION, "key-1") == (json.loads(answer) if answer else {})
    assert [(call.request.method, call.request.url) for call in api_calls(epm_mock)] == [
        ("POST", APPLICATION_URL), ("GET", f"{APPLICATION_LIST_URL}/req-1")]


@pytest.mark.parametrize("answer", [
    {"json": application_record("Denied", decisionPerformedByUser="epm-admin", decisionTime="2026-11-22 05:01:00")},
    {"json": [application_record("2001")]},  # §5.2: a one-element array; 2001 is Denied's status code
    {"json": {"data": [application_record("denied")]}},
])
@pytest.mark.parametrize("conflict", [{"message": "Request req-1 has already been decided"}, BARE_CONFLICT])
def test_a_409_whose_record_in_epm_shows_the_other_decision_is_decided_otherwise(epm_mock, epm_client, answer,
                                                                                 conflict):
    epm_mock.post(APPLICATION_URL, status=409, json=conflict)
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", **answer)
    with pytest.raises(EpmDecidedOtherwise,
                       match="already decided request req-1.*The Approved decision sent from here was not applied"
                       ) as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert (raised.value.record.decision, raised.value.status, raised.value.retryable) == ("Denied", 409, False)


def test_an_admin_409_reads_the_admin_record_which_may_be_a_one_element_array(epm_mock, epm_client):
    epm_mock.post(ADMIN_URL, status=409, json={"message": "already decided"})
    epm_mock.get(f"{ADMIN_LIST_URL}/adm-1", json=[{"requestInfo": {"requestId": "adm-1"},
                                                   "accessDecision": {"status": "Approved", "duration": "1800"}}])
    with pytest.raises(EpmDecidedOtherwise) as raised:
        epm_client.send_admin_decision({"requestId": "adm-1", "decision": "Denied"}, "key-1")
    assert raised.value.record.decision == "Approved"


@pytest.mark.parametrize("answer, said, bounded, status", [
    # An outage met reading the record: retried as long as it lasts, the read's answer the latest (none for a
    # time-out), as for any outage.
    ({"status": 503}, "could not be read", False, 503),
    ({"body": requests.exceptions.ReadTimeout("read timed out")}, "could not be read", False, None),
    ({"status": 404}, "EPM does not know request req-1", True, 409),
    ({"json": []}, "EPM does not know request req-1", True, 409),
    ({"json": application_record("Closed")}, "check the EPM Statuses Meaning Approved and Denied settings", True,
     409),
    ({"json": application_record(None)}, "status (none), undecided", True, 409),
    ({"body": "<html>sign in</html>"}, "could not be read", True, 409),
])
@pytest.mark.parametrize("conflict", [{"message": "already decided"}, BARE_CONFLICT])
def test_a_409_whose_record_does_not_tell_the_decision_is_not_acknowledged_but_retryable(
        epm_mock, epm_client, answer, said, bounded, status, conflict):
    epm_mock.post(APPLICATION_URL, status=409, json=conflict)
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", **answer)
    with pytest.raises(EpmRetryable, match=r"EPM rejected the Application Access decision .* \(HTTP 409\)") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert said in raised.value.message
    assert raised.value.status == status and not isinstance(raised.value, EpmDecidedOtherwise)
    # The outbox retries an unresolved 409 up to a bound (app/decisions/delivery.py), an outage without one.
    assert isinstance(raised.value, EpmConflictUnresolved) == bounded


@pytest.mark.parametrize("status", ["Pending", "pending", "1000"])
@pytest.mark.parametrize("conflict", [{"message": "Request is locked by another approver"}, BARE_CONFLICT])
def test_a_409_whose_record_shows_the_request_still_pending_is_a_permanent_rejection(
        epm_mock, epm_client, status, conflict):
    epm_mock.post(APPLICATION_URL, status=409, json=conflict)
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", json=application_record(status))
    with pytest.raises(EpmRejected, match=r"\(HTTP 409\): .*Its record shows request req-1 still undecided "
                                          rf"\(status {status}, undecided\)") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert json.dumps(conflict)[:40] in raised.value.message
    assert not raised.value.retryable and not isinstance(raised.value, EpmDecidedOtherwise)


@pytest.mark.parametrize("status", ["Pending", "1000"])
def test_a_409_saying_already_decided_while_the_record_still_shows_pending_is_retried(epm_mock, epm_client, status):
    # EPM's answer and its record disagree: the record lags the answer (the decision sent before, whose 2xx was
    # lost, may be what EPM applied). Refusing for good would let the ticket be decided again.
    epm_mock.post(APPLICATION_URL, status=409, json={"message": "Request req-1 has already been decided"})
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", json=application_record(status))
    with pytest.raises(EpmRecordLags, match=r"It says the request was already decided, but its record shows request "
                                            r"req-1 still undecided \(status \w+, undecided\): the record may lag "
                                            "EPM's answer$") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.status == 409 and raised.value.retryable
    assert "EPM Statuses Meaning" not in raised.value.message, "a pending status is mapped: nothing to check"


def test_a_decision_without_an_idempotency_key_is_refused_before_any_call(epm_mock, epm_client):
    with pytest.raises(ValueError, match="idempotency key"):
        epm_client.send_application_decision(DECISION, "")
    assert len(epm_mock.calls) == 0


# --- Errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_passing_failures_are_retryable(epm_mock, epm_client, status):
    epm_mock.post(APPLICATION_URL, status=status, body="busy")
    with pytest.raises(EpmRetryable) as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert (raised.value.status, raised.value.retryable, raised.value.retry_after) == (status, True, None)


def test_retry_after_seconds_are_passed_on(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, status=429, headers={"Retry-After": "120"})
    with pytest.raises(EpmRetryable, match="retry after 120 s") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.retry_after == 120


def test_retry_after_as_a_date_becomes_seconds(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, status=503, headers={"Retry-After": "Fri, 31 Dec 2100 23:59:59 GMT"})
    with pytest.raises(EpmRetryable) as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.retry_after > 86400


@pytest.mark.parametrize("value, seconds", [("9" * 5000, 10 ** 12), ("\u00b2", None)])
def test_a_retry_after_beyond_reason_or_not_ascii_digits_is_still_a_retryable_answer(
        epm_mock, epm_client, value, seconds):
    # Thousands of digits are "much later" (each queue caps the wait); a superscript two (Latin-1) is no number.
    epm_mock.post(APPLICATION_URL, status=429, headers={"Retry-After": value})
    with pytest.raises(EpmRetryable) as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.retry_after == seconds


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_client_errors_are_permanent_and_show_epms_answer(epm_mock, epm_client, status):
    epm_mock.post(APPLICATION_URL, status=status, json={"message": "itsmRequestId unknown"})
    with pytest.raises(EpmRejected, match="itsmRequestId unknown") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert (raised.value.status, raised.value.retryable) == (status, False)
    assert "itsmRequestId unknown" in raised.value.body


def test_403_says_which_permission_is_missing(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, status=403)
    with pytest.raises(EpmForbidden, match="JIT — Full Access") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert (raised.value.status, raised.value.retryable) == (403, False)


def test_a_time_out_is_retryable(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(EpmRetryable, match="did not answer .* within 7 s") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.status is None


def test_a_reset_connection_is_retryable(epm_mock, epm_client):
    reset = requests.exceptions.ConnectionError(ConnectionResetError(104, "Connection reset by peer"))
    epm_mock.post(APPLICATION_URL, body=reset)
    with pytest.raises(EpmRetryable, match="was reset"):
        epm_client.send_application_decision(DECISION, "key-1")


def test_an_unknown_host_is_unreachable_and_points_at_the_host_name(epm_mock, epm_client):
    cause = NameResolutionError("acme-services.pm.beyondtrustcloud.com", None,
                                socket.gaierror(-2, "Name or service not known"))
    epm_mock.replace("POST", TOKEN_URL, body=requests.exceptions.ConnectionError(MaxRetryError(None, TOKEN_URL, cause)))
    with pytest.raises(EpmUnreachable, match="Could not resolve host acme-services.pm.beyondtrustcloud.com — "
                                             "check the PMC Service Host Name") as raised:
        epm_client.send_application_decision(DECISION, "key-1")
    assert raised.value.retryable


def test_a_failed_certificate_check_is_unreachable_and_says_so(epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, body=requests.exceptions.SSLError("certificate verify failed"))
    with pytest.raises(EpmUnreachable, match="TLS certificate verification failed for "
                                             "acme-services.pm.beyondtrustcloud.com"):
        epm_client.send_application_decision(DECISION, "key-1")


def test_a_refused_connection_is_unreachable_and_says_so():
    client = EpmClient(f"http://127.0.0.1:{free_port()}", CLIENT_ID, CLIENT_SECRET, timeout=2)
    with pytest.raises(EpmUnreachable, match="Connection refused by 127.0.0.1"):
        client.test_connection()


def test_every_error_is_an_epm_error():
    for error_class in (EpmRetryable, EpmUnreachable, EpmRejected, EpmAuthFailed, EpmForbidden):
        assert issubclass(error_class, EpmError)


# --- Reads ------------------------------------------------------------------------------


def test_list_requests_asks_for_one_page(epm_mock, epm_client):
    page = {"data": [{"id": "req-1"}], "pageCount": 3, "totalRecordCount": 3}
    epm_mock.get(ADMIN_LIST_URL, json=page)
    assert epm_client.list_requests(contract.KIND_ADMIN, page_size=1, page_number=2) == page
    [call] = api_calls(epm_mock)
    assert parse_qs(urlsplit(call.request.url).query) == {"Pagination.PageSize": ["1"],
                                                          "Pagination.PageNumber": ["2"]}


def test_list_requests_refuses_pages_larger_than_epm_allows(epm_client):
    with pytest.raises(ValueError, match="page_size"):
        epm_client.list_requests(contract.KIND_APPLICATION, page_size=201)


def test_get_request_reads_one_record_by_its_request_id(epm_mock, epm_client):
    epm_mock.get(f"{APPLICATION_LIST_URL}/6b1f3a52%2F1", json={"id": "6b1f3a52/1"})
    assert epm_client.get_request(contract.KIND_APPLICATION, "6b1f3a52/1") == {"id": "6b1f3a52/1"}
    [call] = api_calls(epm_mock)
    assert (call.request.method, call.request.headers["Authorization"]) == ("GET", f"Bearer {TOKEN}")


ADMIN_RECORD = factories.epm_api_record("admin_access_request_v2_single")[0]


@pytest.mark.parametrize("answer", [ADMIN_RECORD, [ADMIN_RECORD], {"data": [ADMIN_RECORD]}, {"Data": [ADMIN_RECORD]}],
                         ids=["object", "one-element array", "data envelope", "Data envelope"])
def test_a_single_read_is_one_record_whatever_its_wrapping(epm_mock, epm_client, answer):
    request_id = ADMIN_RECORD["requestInfo"]["requestId"]
    epm_mock.get(f"{ADMIN_LIST_URL}/{request_id}", json=answer)
    record = epm_client.get_request(contract.KIND_ADMIN, request_id)
    assert record == ADMIN_RECORD and record["requestInfo"]["computerId"] == ADMIN_RECORD["requestInfo"]["computerId"]


@pytest.mark.parametrize("answer", [dict(json=[]), dict(json={"data": []}), dict(status=404, json={"error": "x"})],
                         ids=["empty array", "empty data", "404"])
def test_an_unknown_request_is_none(epm_mock, epm_client, answer):
    epm_mock.get(f"{APPLICATION_LIST_URL}/nope", **answer)
    assert epm_client.get_request(contract.KIND_APPLICATION, "nope") is None


@pytest.mark.parametrize("answer, said", [([{"id": "a"}, {"id": "b"}], "2 records instead of one"),
                                          ("Approved", "a string, not a record")])
def test_a_single_read_answered_with_something_else_is_rejected_naming_the_url(epm_mock, epm_client, answer, said):
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", json=answer)
    with pytest.raises(EpmRejected, match=said) as raised:
        epm_client.get_request(contract.KIND_APPLICATION, "req-1")
    assert f"{APPLICATION_LIST_URL}/req-1" in raised.value.message and raised.value.status == 200


def test_a_refused_single_read_is_still_an_error(epm_mock, epm_client):
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", status=403)
    with pytest.raises(EpmForbidden):
        epm_client.get_request(contract.KIND_APPLICATION, "req-1")


def test_a_single_read_that_is_not_json_is_rejected(epm_mock, epm_client):
    epm_mock.get(f"{APPLICATION_LIST_URL}/req-1", body="<html>sign in</html>")
    with pytest.raises(EpmRejected, match="other than a JSON object"):
        epm_client.get_request(contract.KIND_APPLICATION, "req-1")


def test_a_read_that_is_not_json_is_rejected(epm_mock, epm_client):
    epm_mock.get(APPLICATION_LIST_URL, body="<html>sign in</html>")
    with pytest.raises(EpmRejected, match="not a JSON object|other than a JSON object"):
        epm_client.list_requests(contract.KIND_APPLICATION)


@pytest.mark.parametrize("page", [{"data": [], "pageCount": 0, "totalRecordCount": 0},
                                  {"Data": [{"id": "x"}], "PageCount": 9}])
def test_test_connection_fetches_a_token_and_reads_one_page_of_one(epm_mock, epm_client, page):
    epm_mock.get(APPLICATION_LIST_URL, json=page)
    assert epm_client.test_connection() == "Connection OK"
    assert len(token_calls(epm_mock)) == 1
    [call] = api_calls(epm_mock)
    assert parse_qs(urlsplit(call.request.url).query) == {"Pagination.PageSize": ["1"],
                                                          "Pagination.PageNumber": ["1"]}


@pytest.mark.parametrize("answer", [{"id": "a record, not a page"}, {"data": "none"}])
def test_test_connection_refuses_an_answer_that_is_not_a_page(epm_mock, epm_client, answer):
    epm_mock.get(APPLICATION_LIST_URL, json=answer)
    with pytest.raises(EpmRejected, match="without a data list"):
        epm_client.test_connection()


# --- The call log and logging --------------------------------------------------------------


def test_each_attempt_is_reported_with_secrets_redacted(epm_mock, epm_client, calls_log):
    epm_mock.post(APPLICATION_URL, status=401)
    epm_mock.post(APPLICATION_URL, json={"access_token": "leaked-by-epm", "ok": True})
    body = dict(DECISION, client_secret="do-not-log")
    epm_client.send_application_decision(body, "key-1")
    assert [(r["path"], r["status"], r["attempt"]) for r in calls_log] == [
        ("/oauth/connect/token", 200, 1), ("/management-api/v2/AuthorizationRequest/notification", 401, 1),
        ("/oauth/connect/token", 200, 2), ("/management-api/v2/AuthorizationRequest/notification", 200, 2)]
    assert set(calls_log[0]) == {"method", "url", "path", "status", "duration_ms", "attempt", "request_body",
                                 "response_body", "error", "correlation_id", "answered_correlation_id"}
    logged = json.dumps(calls_log)
    for secret in (CLIENT_SECRET, TOKEN, "leaked-by-epm", "do-not-log"):
        assert secret not in logged
    assert "client_id=broker-client" in calls_log[0]["request_body"]
    assert json.loads(calls_log[3]["request_body"])["itsmRequestId"] == "req-1"
    assert calls_log[1]["error"] == "HTTP 401"


def test_a_network_failure_is_reported_without_a_status(epm_mock, epm_client, calls_log):
    epm_mock.post(APPLICATION_URL, body=requests.exceptions.ConnectTimeout("connect timed out"))
    with pytest.raises(EpmRetryable):
        epm_client.send_application_decision(DECISION, "key-1")
    assert calls_log[-1]["status"] is None
    assert "did not answer" in calls_log[-1]["error"]


def test_a_failing_call_log_does_not_stop_the_decision(epm_mock):
    def broken_log(record):
        raise RuntimeError("log table missing")

    epm_mock.post(APPLICATION_URL, json={})
    assert EpmClient(EPM, CLIENT_ID, CLIENT_SECRET, on_call=broken_log).send_application_decision(DECISION, "k") == {}


def test_nothing_secret_reaches_the_log_even_at_debug_level(epm_mock, epm_client, caplog):
    epm_mock.post(APPLICATION_URL, json={})
    with caplog.at_level(logging.DEBUG):
        epm_client.send_application_decision(DECISION, "key-1")
    assert "fetch" in caplog.text.lower()
    assert CLIENT_SECRET not in caplog.text
    assert TOKEN not in caplog.text


# --- Configuration ---------------------------------------------------------------------------


def test_from_configuration_builds_the_https_base_url(epm_mock):
    epm_mock.post(APPLICATION_URL, json={})
    client = EpmClient.from_configuration(configuration(pmc_host=" acme-services.pm.beyondtrustcloud.com "))
    assert client.base_url == EPM
    assert CLIENT_SECRET not in repr(client)


@pytest.mark.parametrize("overrides, message", [
    ({"pmc_host": ""}, "PMC Service Host Name is empty"),
    ({"client_id": " "}, "client ID and client secret are not configured"),
    ({"client_secret": ""}, "client ID and client secret are not configured"),
])
def test_from_configuration_refuses_an_unusable_configuration(overrides, message):
    with pytest.raises(ValueError, match=message):
        EpmClient.from_configuration(configuration(**overrides))
