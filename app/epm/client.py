"""The client for EPM's management API: tokens, decision calls and reads (contract/epm.md §2-4).

Tokens are shared through app.epm.tokens and calls reuse one kept-alive session per thread,
so a decision pays for no new TLS handshake; every call has a time-out and failures raise app.epm.errors."""
import json
import logging
import os
import re
import threading
import time
from urllib.parse import quote, urljoin

import peewee
import requests
from requests.auth import HTTPBasicAuth
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error
from requests_oauthlib import OAuth2Session

from app import contract, egress
from app.epm import records, tokens
from app.epm.errors import (
    EpmAuthFailed, EpmConflictUnresolved, EpmDecidedOtherwise, EpmError, EpmRecordLags, EpmRejected, EpmRetryable,
    EpmUnreachable,
    error_for_exception, error_for_status, json_answer, response_body, token_refusal,
)
from app.epm.hosts import (  # noqa: F401 - validate_host is part of this module's public API
    EXAMPLE_HOST, base_url_for_host, host_name, host_warnings, is_loopback, validate_host,
)
from app.logs.redaction import MASK, redact

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10
MAX_PAGE_SIZE = 200
CONNECTION_OK = "Connection OK"
LIST_PATHS = {
    contract.KIND_APPLICATION: contract.EPM_APPLICATION_LIST_PATH,
    contract.KIND_ADMIN: contract.EPM_ADMIN_LIST_PATH,
}
PAGE_SIZE_PARAM = "Pagination.PageSize"
PAGE_NUMBER_PARAM = "Pagination.PageNumber"
# What to check when the token endpoint refuses with a 400/401, by RFC 6749's error code.
CREDENTIALS_HINT = "Check the client ID and client secret (regenerating the secret in EPM invalidates the old one)."
TOKEN_ERROR_HINTS = {
    "invalid_scope": f"Check the Token Scope setting (empty sends none; EPM's is {contract.EPM_TOKEN_SCOPE}).",
    "invalid_request": f"Check the Token Client Authentication setting (EPM documents {contract.TOKEN_AUTH_POST}).",
}

# ASSUMPTION (EPM documents only 200 and 500, and no 409 body): a 409 may answer a re-send after a lost 2xx,
# or tell of EPM's own decision taken meanwhile (an admin in EPM's console). EPM is an ASP.NET API, whose bare
# Conflict() says no more than {"title": "Conflict", "status": 409, ...}: whatever its body, EPM's record of the
# request tells what happened (_check_conflict). A 409 that says in words the request was already decided while
# the record still shows it pending tells of a record lagging EPM's answer: retried, not refused (EpmRecordLags).
_SAYS_DECIDED = re.compile(r"\balready\s+(?:been\s+)?(?:decided|processed|approved|denied|completed|final)",
                           re.IGNORECASE)


# requests-oauthlib logs the token request (the client secret, Basic credentials) and the token at DEBUG;
# the call log records the same calls masked, so those lines are never emitted.
logging.getLogger("requests_oauthlib").setLevel(logging.INFO)


# A connection idle longer than this is not reused: servers and load balancers close idle
# keep-alive connections (often after 60 s or more), and a request written into one they
# are just closing fails. urllib3 already skips one whose close it has seen.
KEEPALIVE_IDLE_SECONDS = 30

_local = threading.local()


def _forget_sessions_after_fork():
    # A forked child (a gunicorn worker, a test process) must not share its parent's sockets.
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_sessions_after_fork)


def http_session(internal=False):
    """This thread's requests.Session for EPM's API: one per thread (a Session is not
    thread-safe), with its connections dropped once they have been idle too long. It only
    connects where app/egress.py allows (private addresses only when `internal`)."""
    now = time.monotonic()
    session = getattr(_local, "session", None)
    if session is not None and (now - _local.last_used > KEEPALIVE_IDLE_SECONDS or _local.internal != internal):
        session.close()
        session = None
    if session is None:
        session = _local.session = egress.checked_session(internal)
        _local.internal = internal
    _local.last_used = now
    return session


def close_http_sessions():
    """Close this thread's kept-alive EPM connections (tests; a process about to stop)."""
    session = getattr(_local, "session", None)
    if session is not None:
        session.close()
        _local.session = None


def _readable_token_answer(response):
    """The token answer as oauthlib can read it (contract/epm.md §5.6): without the scope key in any case
    (unused, and oauthlib refuses one unlike the request's), `expires_in` a whole number or dropped when
    unreadable (the default lifetime applies); anything but a JSON object left for oauthlib to refuse."""
    document = json_answer(response)
    if isinstance(document, dict):
        document = {key: value for key, value in document.items() if key.lower() != "scope"}
        try:
            document["expires_in"] = int(float(str(document["expires_in"])))
        except (KeyError, TypeError, ValueError, OverflowError):
            document.pop("expires_in", None)
        response._content = json.dumps(document).encode("utf-8")  # as requests-oauthlib's compliance fixes do
    return response


def _path(value, default):
    value = (value or "").strip() or default
    return value if value.startswith("/") else f"/{value}"


class EpmClient:
    """Calls one EPM tenant's management API with OAuth 2.0 client credentials."""

    def __init__(self, base_url, client_id, client_secret, *, token_path=contract.EPM_TOKEN_PATH,
                 application_decision_path=contract.EPM_APPLICATION_DECISION_PATH,
                 admin_decision_path=contract.EPM_ADMIN_DECISION_PATH, timeout=DEFAULT_TIMEOUT, on_call=None,
                 shared_token=False, token_auth_method=contract.TOKEN_AUTH_POST, token_scope="", internal=False,
                 status_mapping=records.DEFAULT_MAPPING):
        self.base_url = base_url.rstrip("/")
        self.host = host_name(self.base_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_path = _path(token_path, contract.EPM_TOKEN_PATH)
        self.application_decision_path = _path(application_decision_path, contract.EPM_APPLICATION_DECISION_PATH)
        self.admin_decision_path = _path(admin_decision_path, contract.EPM_ADMIN_DECISION_PATH)
        self.timeout = timeout
        self.token_scope = (token_scope or "").strip()
        self._token_credentials = (dict(auth=HTTPBasicAuth(client_id, client_secret))
                                   if token_auth_method == contract.TOKEN_AUTH_BASIC else
                                   dict(client_id=client_id, client_secret=client_secret, include_client_id=True))
        self.on_call = on_call
        self._token_key = tokens.cache_key(self.base_url, self.token_path, client_id, client_secret)
        # shared_token: take the access token from, and store it in, the database for every process.
        self.shared_token = shared_token
        # internal: the admin marked EPM as on a private network (`epm_internal`), so private addresses are allowed.
        self.internal = internal
        # Which accessDecision.status values mean Approved and Denied (the configuration's settings).
        self.status_mapping = status_mapping

    @classmethod
    def from_configuration(cls, config, on_call=None, *, timeout=DEFAULT_TIMEOUT, shared_token=None):
        """A client for the `Configuration` record; ValueError if the host or credentials are unusable.

        A record read from the database shares its token through it (unless `shared_token` is False)."""
        base_url = base_url_for_host(config.pmc_host)
        client_id = (config.client_id or "").strip()
        if not client_id or not config.client_secret:
            raise ValueError("The EPM client ID and client secret are not configured.")
        return cls(base_url, client_id, config.client_secret, token_path=config.token_path,
                   application_decision_path=config.application_decision_path,
                   admin_decision_path=config.admin_decision_path, timeout=timeout, on_call=on_call,
                   token_auth_method=config.token_auth_method, token_scope=config.token_scope,
                   internal=bool(getattr(config, "epm_internal", False)),
                   status_mapping=records.StatusMapping.of(config),
                   shared_token=isinstance(config, peewee.Model) if shared_token is None else shared_token)

    def __repr__(self):
        return f"EpmClient({self.base_url!r}, client_id={self.client_id!r})"

    def send_application_decision(self, body, idempotency_key):
        """POST an Application Access decision; returns EPM's JSON or {} once acknowledged: a 2xx, or a 409
        (whatever its body) when EPM's record of the request shows this decision. EpmDecidedOtherwise when the
        record shows the other one (_check_conflict). x-correlation-id is the RequestId (§5.7)."""
        return self._send_decision(contract.KIND_APPLICATION, self.application_decision_path, body,
                                   idempotency_key, "the Application Access decision", body.get("itsmRequestId"))

    def send_admin_decision(self, body, idempotency_key):
        """POST an Admin Access decision (payloads.admin_decision_body); same answers as above."""
        return self._send_decision(contract.KIND_ADMIN, self.admin_decision_path, body, idempotency_key,
                                   "the Admin Access decision", body.get("requestId"))

    def list_requests(self, kind, page_size=MAX_PAGE_SIZE, page_number=1):
        """One page of EPM's requests of `kind`: {"data": [...], "pageCount": N, "totalRecordCount": N}."""
        if not 1 <= int(page_size) <= MAX_PAGE_SIZE or int(page_number) < 1:
            raise ValueError(f"page_size must be 1–{MAX_PAGE_SIZE} and page_number at least 1")
        params = {PAGE_SIZE_PARAM: int(page_size), PAGE_NUMBER_PARAM: int(page_number)}
        response = self._call("GET", self._list_path(kind), what=f"the {kind} request list", params=params)
        return self._json_document(response, "the request list")

    def get_request(self, kind, request_id):
        """EPM's record of one request (by its RequestId) as a dict, or None when EPM does not know it
        (a 404, or an empty array: contract/epm.md §5.2); EpmRejected when the answer is not one record."""
        path = f"{self._list_path(kind)}/{quote(str(request_id), safe='')}"
        try:
            response = self._call("GET", path, what=f"the {kind} request {request_id}")
        except EpmRejected as error:
            if error.status == 404:
                return None
            raise
        document = json_answer(response)
        if document is None:
            self._json_document(response, "the request")  # raises: not JSON
        try:
            return records.one_record(document)
        except EpmRejected as error:
            raise EpmRejected(f"{error.message} ({self.base_url}{path}, HTTP {response.status_code})",
                              status=response.status_code, body=response_body(response)) from None

    def test_connection(self):
        """Fetch a token and read one page of size 1, which must be a page ({"data": [...]}); returns
        "Connection OK" or raises EpmError."""
        self._access_token()
        document = self.list_requests(contract.KIND_APPLICATION, page_size=1, page_number=1)
        if records.page_records(document) is None:
            raise EpmRejected("EPM answered the request list without a data list: is the host EPM's management "
                              f"API? {' '.join(host_warnings(self.base_url))}".strip())
        return CONNECTION_OK

    def _list_path(self, kind):
        try:
            return LIST_PATHS[kind]
        except KeyError:
            raise ValueError(f"Unknown request kind {kind!r}; expected one of {sorted(LIST_PATHS)}") from None

    def _send_decision(self, kind, path, body, idempotency_key, what, request_id):
        if not idempotency_key:
            raise ValueError("A decision needs an idempotency key so a re-send cannot apply twice")
        headers = {contract.IDEMPOTENCY_HEADER: str(idempotency_key), contract.CORRELATION_HEADER: request_id}
        response = self._call("POST", path, what=what, json_body=body, headers=headers,
                              accept=lambda r: r.status_code == 409)
        if response.status_code == 409:
            self._check_conflict(kind, request_id, records.text(records.child(body, "decision")), response, what)
        document = json_answer(response)
        return document if isinstance(document, dict) else {} if document is None else {"result": document}

    def _check_conflict(self, kind, request_id, decision, answer, what):
        """Return when EPM's record of `request_id` shows `decision`: the 409 `answer` then acknowledges it (the
        answer to a re-send whose 2xx was lost). EpmDecidedOtherwise when the record shows the other decision;
        EpmRejected (permanent) when it shows the request still pending and the 409 does not say it was
        already decided: EPM refused the decision, and re-sending it would only be refused again; EpmRecordLags
        (retryable, up to the outbox's bound) when the 409 says so.

        Anything else leaves the decision unacknowledged and retryable, as a failed call does: EpmRetryable when
        the record could not be read for now (a time-out, a 5xx: an outage, retried as long as it lasts), with the
        read's status and message first, as the latest answer;
        EpmConflictUnresolved (retried up to the outbox's bound) when EPM does not know the request, its record
        shows a status the EPM Statuses Meaning Approved/Denied settings do not name, or it cannot be read for
        good. The 409 alone tells neither that EPM applied this decision nor that it applied the other one, so
        neither is recorded."""
        said = error_for_status(answer, what=what).message
        try:
            raw = self.get_request(kind, request_id)
        except EpmError as error:
            if error.retryable:
                # An outage met by the read: the latest answer is the read's (its status, none for a time-out), so
                # the decision stores it as any outage attempt does and the undelivered alert counts it; the 409
                # follows as what came before.
                raise EpmRetryable(f"EPM's record of request {request_id} could not be read to tell whether the "
                                   f"decision was applied: {error.message.rstrip('.')}. EPM had answered the "
                                   f"decision: {said}", status=error.status, body=error.body,
                                   retry_after=error.retry_after) from error
            raise EpmConflictUnresolved(f"{said}. Its record of request {request_id} could not be read to tell "
                                        f"whether the decision was applied: {error.message}",
                                        status=answer.status_code, body=response_body(answer)) from error
        record = None if raw is None else records.read_record(kind, raw, self.status_mapping)
        if record is not None and record.is_pending:
            if _SAYS_DECIDED.search(answer.text or ""):
                raise EpmRecordLags(f"{said}. It says the request was already decided, but its record shows request "
                                    f"{request_id} still undecided ({records.describe(record, request_id)}): the "
                                    "record may lag EPM's answer",
                                    status=answer.status_code, body=response_body(answer))
            raise EpmRejected(f"{said}. Its record shows request {request_id} still undecided "
                              f"({records.describe(record, request_id)}): EPM refused the decision sent from here, "
                              "which was not applied", status=answer.status_code, body=response_body(answer))
        if record is None or record.decision is None:
            unmapped = (" (check the EPM Statuses Meaning Approved and Denied settings)"
                        if record is not None and record.status else "")
            raise EpmConflictUnresolved(f"{said}. Its record of request {request_id} does not show the decision: "
                                        f"{records.describe(record, request_id)}{unmapped}",
                                        status=answer.status_code, body=response_body(answer))
        if record.decision.casefold() != (decision or "").casefold():
            log.info("EPM's record of %s request %s shows %s, not the %s sent", kind, request_id, record.decision,
                     decision)
            raise EpmDecidedOtherwise(f"EPM had already decided request {request_id}: "
                                      f"{records.describe(record, request_id)}. The {decision or 'other'} "
                                      "decision sent from here was not applied", record=record,
                                      status=answer.status_code, body=response_body(answer))
        log.info("EPM's record of %s request %s shows the %s sent: its 409 acknowledges it", kind, request_id,
                 decision)

    def _json_document(self, response, what):
        document = json_answer(response)
        if not isinstance(document, dict):
            hint = " ".join(host_warnings(self.base_url))
            raise EpmRejected(f"EPM answered {what} with something other than a JSON object "
                              f"(HTTP {response.status_code}). {hint}".strip(),
                              status=response.status_code, body=response_body(response))
        return document

    def _call(self, method, path, *, what, json_body=None, params=None, headers=None, accept=None):
        """Make one API call with the cached token; on a 401, fetch a new token and try exactly once more."""
        url = f"{self.base_url}{path}"
        token = self._access_token()
        for attempt in (1, 2):
            request_headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **(headers or {})}
            response = self._attempt(method, url, path, attempt, what, json_body=json_body, params=params,
                                     headers=request_headers)
            if response.status_code == 401 and attempt == 1:
                log.info("EPM refused the access token for %s %s; fetching a new one", method, path)
                token = self._access_token(stale=token)
                continue
            if 200 <= response.status_code < 300 or (accept is not None and accept(response)):
                return response
            raise error_for_status(response, what=what)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _attempt(self, method, url, path, attempt, what, *, json_body, params, headers):
        started = time.perf_counter()
        request_body = json.dumps(redact(json_body), ensure_ascii=False) if json_body is not None else None
        try:
            response = http_session(self.internal).request(method, url, json=json_body, params=params,
                                                           headers=headers, timeout=self.timeout,
                                                           allow_redirects=False)
        except egress.EgressRefused as error:
            failure = self._refused(error)
            self._report(method, url, path, attempt, started, None, request_body, None, failure.message,
                         correlation=(headers.get(contract.CORRELATION_HEADER), None))
            raise failure from None
        except requests.RequestException as error:
            failure = error_for_exception(error, host=self.host, what=what, timeout=self.timeout)
            self._report(method, url, path, attempt, started, None, request_body, None, failure.message,
                         correlation=(headers.get(contract.CORRELATION_HEADER), None))
            raise failure from error
        ok = 200 <= response.status_code < 300
        self._report(method, response.url, path, attempt, started, response.status_code, request_body,
                     response_body(response), None if ok else f"HTTP {response.status_code}",
                     correlation=(headers.get(contract.CORRELATION_HEADER),
                                  response.headers.get(contract.CORRELATION_HEADER)))
        return response

    def _access_token(self, stale=None):
        """The shared token; `stale` is the one the API just refused (a refresh, reported as attempt 2)."""
        return tokens.get_token(self._token_key, lambda: self._fetch_token(attempt=1 if stale is None else 2),
                                stale=stale, shared=self.shared_token,
                                claim_seconds=self.timeout + tokens.CLAIM_MARGIN_SECONDS)

    def _fetch_token(self, attempt):
        """POST the client-credentials grant, form-encoded: client_id and client_secret in the body, or as
        HTTP Basic when configured; the scope only when configured (contract/epm.md §5.6)."""
        token_url = f"{self.base_url}{self.token_path}"
        self._allow_plain_http_if_loopback(token_url)
        started = time.perf_counter()
        answered = []

        def check_answer(response):
            # Runs inside fetch_token before oauthlib parses the body, so every non-200
            # answer becomes our error (oauthlib would raise a bare parsing error).
            answered.append(response)
            failure = None if response.status_code == 200 else self._token_error(response, token_url)
            self._report("POST", token_url, self.token_path, attempt, started, response.status_code,
                         redact(response.request.body), self._masked(response_body(response)),
                         failure and failure.message)
            if failure is not None:
                log.warning("%s", failure.message)
                raise failure
            return _readable_token_answer(response)

        def refuse_redirect(response, **_):
            # A session's response hooks run before requests follows a redirect, and fetch_token offers no
            # allow_redirects: requests would re-post the form, client secret included, wherever it points
            # (plain http:// too). The API calls refuse redirects the same way (_attempt).
            if response.is_redirect:
                failure = self._token_redirect(response, token_url)
                self._report("POST", token_url, self.token_path, attempt, started, response.status_code,
                             redact(response.request.body), self._masked(response_body(response)), failure.message)
                log.warning("%s", failure.message)
                raise failure
            return response

        tokens.count_fetch()
        session = OAuth2Session(client=BackendApplicationClient(client_id=self.client_id,
                                                                scope=self.token_scope or None))
        session.register_compliance_hook("access_token_response", check_answer)
        session.hooks["response"].append(refuse_redirect)
        session.max_redirects = 0  # should the hook ever be bypassed: a TooManyRedirects, never a re-post
        egress.mount(session, self.internal)
        try:
            with session:
                token = session.fetch_token(token_url, timeout=self.timeout, **self._token_credentials)
        except egress.EgressRefused as error:
            failure = self._refused(error)
            self._report("POST", token_url, self.token_path, attempt, started, None, None, None, failure.message)
            raise failure from None
        except requests.RequestException as error:
            failure = error_for_exception(error, host=self.host, what="the token request", timeout=self.timeout)
            self._report("POST", token_url, self.token_path, attempt, started, None,
                         redact(getattr(error.request, "body", None)), None, failure.message)
            raise failure from error
        except (OAuth2Error, ValueError) as error:
            status = answered[0].status_code if answered else None
            raise EpmRejected(f"EPM's token endpoint {token_url} answered without a usable access token "
                              f"({error.__class__.__name__}). {' '.join(host_warnings(self.base_url))}".strip(),
                              status=status, body=response_body(answered[0]) if answered else None) from error
        log.info("fetched an EPM access token for client %s at %s", self.client_id, self.host)
        return token["access_token"], token.get("expires_in")

    def _token_error(self, response, token_url):
        """The error for a refused token request: status, what EPM said (never the secret) and what to check."""
        status = response.status_code
        body = self._masked(response_body(response))
        advice = " ".join(host_warnings(self.base_url))
        if status in (400, 401):
            code, said = token_refusal(response)
            return EpmAuthFailed(self._masked(f"EPM refused the token request at {token_url} (HTTP {status}{said}). "
                                              f"{TOKEN_ERROR_HINTS.get(code, CREDENTIALS_HINT)} {advice}").strip(),
                                 status=status, body=body)
        if status in (404, 405):
            return EpmRejected(f"There is no token endpoint at {token_url} (HTTP {status}). Check the PMC Service "
                               f"Host Name and the token path. {advice}".strip(), status=status, body=body)
        return error_for_status(response, what="the token request")

    def _token_redirect(self, response, token_url):
        """The error for a token request answered with a redirect, which is never followed: it names the status
        and the host the redirect points to (not its path or query), never the secret."""
        location = urljoin(token_url, response.headers.get("Location", ""))
        target = host_name(location) or "another address"
        if location.lower().startswith("http://"):
            target = f"{target} over plain http://"
        advice = " ".join(host_warnings(self.base_url))
        return EpmRejected(f"EPM answered the token request (POST {token_url}) with a redirect (HTTP "
                           f"{response.status_code}) to {target}; it was not followed and the client secret was not "
                           f"sent there. Check the PMC Service Host Name (e.g. {EXAMPLE_HOST}) and the token path. "
                           f"{advice}".strip(), status=response.status_code, body=self._masked(response_body(response)))

    def _masked(self, text):
        """`text` without the client secret, should EPM echo it where redact() cannot tell it is one."""
        return text.replace(self._client_secret, MASK) if text and self._client_secret else text

    def _refused(self, error):
        """The error for a connection app/egress.py refused (to a link-local, metadata or private address)."""
        log.warning("refused to call EPM: %s", error)
        return EpmUnreachable(f"Refusing to connect to {self.host}: {error}")

    def _allow_plain_http_if_loopback(self, token_url):
        if not token_url.lower().startswith("http://"):
            return
        if not is_loopback(self.host):
            raise EpmRejected(f"Refusing to send the client secret over plain http:// to {self.host}. "
                              "Use https:// (http:// is only for a test server on this machine).")
        # oauthlib refuses http:// token URLs unless this is set, and has no per-session
        # switch (requests-oauthlib issue 61). We only get here for a loopback test server.
        os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

    def _report(self, method, url, path, attempt, started, status, request_body, response_text, error,
                correlation=(None, None)):
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        log.info("EPM %s %s -> %s in %.0f ms (attempt %s)", method, path, status or error, duration_ms, attempt)
        if self.on_call is None:
            return
        record = {"method": method, "url": url, "path": path, "status": status, "duration_ms": duration_ms,
                  "attempt": attempt, "request_body": request_body, "response_body": response_text, "error": error,
                  "correlation_id": correlation[0], "answered_correlation_id": correlation[1]}
        try:
            self.on_call(record)
        except Exception:  # noqa: BLE001 - a broken call log must never break a decision's delivery
            log.exception("the EPM call log callback failed")
