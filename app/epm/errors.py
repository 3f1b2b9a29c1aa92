"""What can go wrong when the broker calls EPM, one class per failure an admin can act on.

Messages name the host and say what to check, because approvers and admins see them as they are."""
import socket
import ssl

import requests
from urllib3.exceptions import NameResolutionError

from app import egress
from app.epm.hosts import EXAMPLE_HOST
from app.logs.redaction import redact, truncate

BODY_LIMIT = 1000
MESSAGE_BODY_LIMIT = 300
TOKEN_REFUSAL_LIMIT = 500


class EpmError(Exception):
    """A call to EPM did not succeed."""

    retryable = False

    def __init__(self, message, *, status=None, body=None, retry_after=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body
        self.retry_after = retry_after


class EpmRetryable(EpmError):
    """A passing failure (time-out, connection reset, 408/429/5xx): try again later."""

    retryable = True


class EpmUnreachable(EpmRetryable):
    """The host could not be reached (DNS, TLS, refused); retryable, the message telling a typo from an outage."""


class EpmRejected(EpmError):
    """EPM refused the request for good (a 4xx other than 401/403/408/429)."""


class EpmDecidedOtherwise(EpmRejected):
    """EPM had already decided the request, and its record shows the other decision: the one sent was not
    applied. `record` is what EPM's record says (app.epm.records.RequestRecord); permanent, as re-sending
    cannot change EPM's decision."""

    def __init__(self, message, *, record, status=None, body=None):
        super().__init__(message, status=status, body=body)
        self.record = record


class EpmConflictUnresolved(EpmRetryable):
    """EPM answered a decision 409 and its record does not tell whether the decision was applied: EPM does not know
    the request, its record shows a status the EPM Statuses Meaning Approved/Denied settings do not name, or it
    cannot be read for good (not JSON, a 4xx). The record may yet catch up (or the settings be corrected), so the
    decision is tried again, up to a bound: the outbox gives it up after every step of the retry schedule
    (app/decisions/delivery.py). `still` says what its record kept showing, for the message giving it up."""

    still = "Its record still did not show the decision"


class EpmRecordLags(EpmConflictUnresolved):
    """EPM answered a decision 409 saying the request was already decided, while its record still shows the request
    pending: the record may lag EPM's answer, so the decision is tried again, up to the same bound."""

    still = "It still showed the request undecided"


class EpmAuthFailed(EpmError):
    """EPM refused the client credentials, or an access token even after a refresh.

    Retryable: once an admin corrects the configuration, a decision waiting in the outbox goes through."""

    retryable = True


class EpmForbidden(EpmError):
    """The API account lacks the permission the call needs (403); permanent, as for every 4xx but 401/408/429."""


def response_body(response):
    """EPM's answer as text for errors and logs: redacted, then truncated."""
    return truncate(redact(response.text or ""), BODY_LIMIT)


def json_answer(response):
    """EPM's answer parsed as JSON, or None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def token_refusal(response):
    """(error code or None, ": what EPM said") for a refused token request: RFC 6749's `error` and
    `error_description` when the body is such JSON (unconfirmed for EPM, §5.6), else the raw body cut to
    500 characters; secrets masked, "" for an empty body."""
    document = json_answer(response)
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        said = ": ".join(str(part) for part in (document["error"], document.get("error_description")) if part)
        return document["error"], _snippet(redact(said), TOKEN_REFUSAL_LIMIT)
    return None, _snippet(redact(response.text or ""), TOKEN_REFUSAL_LIMIT)


def _snippet(body, limit=MESSAGE_BODY_LIMIT):
    body = (body or "").strip()
    return f": {truncate(body, limit)}" if body else ""


def error_for_status(response, *, what):
    """The EpmError for an unsuccessful API answer (not 2xx; a 401 here means the refresh did not help)."""
    status = response.status_code
    body = response_body(response)
    where = f"{what} ({response.request.method} {response.url})"
    if status == 401:
        return EpmAuthFailed(f"EPM refused the access token for {where} even after fetching a new one (HTTP 401). "
                             "Check the client ID and client secret.", status=status, body=body)
    if status == 403:
        return EpmForbidden(f"EPM refused {where} (HTTP 403): the API account needs the "
                            "\"JIT — Full Access\" permission in EPM.", status=status, body=body)
    if status in (408, 429) or status >= 500:
        retry_after = egress.retry_after(response.headers)
        wait = f", asked to retry after {retry_after} s" if retry_after is not None else ""
        return EpmRetryable(f"EPM could not handle {where} right now (HTTP {status}{wait}){_snippet(body)}",
                            status=status, body=body, retry_after=retry_after)
    if 300 <= status < 400:
        location = response.headers.get("Location", "another address")
        return EpmRejected(f"EPM answered {where} with a redirect (HTTP {status}) to {location}. "
                           f"Check the PMC Service Host Name (e.g. {EXAMPLE_HOST}).", status=status, body=body)
    return EpmRejected(f"EPM rejected {where} (HTTP {status}){_snippet(body)}", status=status, body=body)


def _causes(error):
    """`error` and everything it wraps: args, urllib3's .reason, __cause__, __context__."""
    seen, pending = set(), [error]
    while pending:
        current = pending.pop()
        if id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        yield current
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(item for item in (getattr(current, "reason", None), current.__cause__, current.__context__)
                       if isinstance(item, BaseException))


def _any(error, types, words=()):
    for cause in _causes(error):
        if isinstance(cause, types) or any(word in str(cause) for word in words):
            return True
    return False


def error_for_exception(error, *, host, what, timeout):
    """The EpmError for a requests exception raised while calling `host` (no HTTP answer came back)."""
    if isinstance(error, requests.exceptions.SSLError) or _any(error, (ssl.SSLError,)):
        return EpmUnreachable(f"TLS certificate verification failed for {host} while calling {what}: {error}. "
                              "Check the PMC Service Host Name and any TLS-intercepting proxy.")
    if isinstance(error, requests.exceptions.Timeout):
        return EpmRetryable(f"EPM ({host}) did not answer {what} within {timeout} s.")
    if _any(error, (NameResolutionError, socket.gaierror),
            ("Name or service not known", "nodename nor servname", "getaddrinfo failed",
             "Temporary failure in name resolution", "Failed to resolve")):
        return EpmUnreachable(f"Could not resolve host {host} — check the PMC Service Host Name (it usually ends "
                              f"in -services, e.g. {EXAMPLE_HOST}).")
    if _any(error, (ConnectionRefusedError,), ("Connection refused",)):
        return EpmUnreachable(f"Connection refused by {host} while calling {what}. Check the PMC Service Host "
                              "Name and port, and that EPM (or the proxy in between) is up.")
    if _any(error, (ConnectionResetError, ConnectionAbortedError), ("Connection aborted", "reset by peer")):
        return EpmRetryable(f"The connection to {host} was reset during {what}.")
    return EpmRetryable(f"Could not complete {what} with {host}: {error}")
