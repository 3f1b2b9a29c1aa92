"""What every ITSM connector shares: the one ticket shape, errors, and HTTP calls with time-outs.

`Connector.request` never follows redirects and logs method, host, path and status only
(headers, bodies and query strings may carry secrets)."""
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

from app.egress import EgressRefused, checked_session

log = logging.getLogger(__name__)

APPROVED = "approved"
REJECTED = "rejected"
REQUESTED = "requested"
NOT_REQUESTED = "not requested"
AUTH_OAUTH = "oauth"


class ItsmError(Exception):
    """The ITSM could not be asked, or refused: the message says what to check."""


class ItsmSettingsError(ItsmError):
    """The connection's settings are incomplete or malformed."""


class ItsmCredentialsRefused(ItsmError):
    """The ITSM answered 401 or 403 to the credentials or token the broker sent."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RemoteTicket:
    """A ticket as the policy checks see it, whichever system holds it; the window is naive UTC."""

    number: str
    state: str = ""
    approval: str = ""
    window_start: datetime = None
    window_end: datetime = None
    requester: str = None
    source: str = ""


def utc_naive(moment):
    """A datetime as naive UTC (aware ones converted, naive ones taken as UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def parse_timestamp(text):
    """ISO 8601 (`2026-03-01T10:00:00.000+0000`, `...Z`) or ServiceNow's `2026-03-01 10:00:00` (UTC)."""
    if text in (None, ""):
        return None
    value = str(text).strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    # Python before 3.12 wants +00:00, not +0000.
    if len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit() and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    try:
        return utc_naive(datetime.fromisoformat(value.replace(" ", "T", 1)))
    except ValueError:
        return None


def from_epoch_millis(value):
    """Milliseconds since 1970 (as ServiceDesk Plus sends them) as naive UTC."""
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc).replace(tzinfo=None)
    except (TypeError, ValueError, OverflowError):
        return None


class TokenCache:
    """Access tokens per connection, renewed a minute before they expire; one per process."""

    def __init__(self):
        self._tokens = {}
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            token, expires = self._tokens.get(key, (None, 0))
        return token if token and expires > time.monotonic() + 60 else None

    def put(self, key, token, lifetime_seconds):
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + max(int(lifetime_seconds or 3600), 120))

    def drop(self, key):
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self):
        with self._lock:
            self._tokens.clear()


tokens = TokenCache()


INTERNAL_OPTION = "internal"


def is_internal(connection):
    """Whether an admin marked the connection internal (option internal=true): private addresses allowed."""
    return str(connection.option(INTERNAL_OPTION) or "").strip().lower() in ("true", "yes", "1", "on")


class Connector:
    """Base class: subclasses set `kind`, `label`, `auth_methods`, and implement `lookup` and `check`."""

    kind = ""
    label = ""
    auth_methods = ()
    # Whether the mapping below was checked against the vendor's published API. A
    # connector whose answers could not be confirmed says which parts in its docstring.
    confirmed = True
    # Options whose value is an address the connector sends a secret, or a token made from one, to: saved only
    # as an http(s) URL the broker may connect to, like the base URL (app/itsm/connections.py).
    host_options = ()

    def __init__(self, connection):
        self.connection = connection
        self.timeout = connection.timeout_seconds or 10
        self.token_from_cache = False

    @property
    def name(self):
        return self.connection.name

    def describe(self):
        return f"{self.label} {self.name!r}"

    # --- What subclasses provide ------------------------------------------------------

    def lookup(self, number):  # pragma: no cover - every connector overrides it
        """The ticket `number` as a RemoteTicket, None when the ITSM has none; ItsmError on failure."""
        raise NotImplementedError

    def check(self):  # pragma: no cover - every connector overrides it
        """One cheap authenticated call proving the settings work; returns what it read."""
        raise NotImplementedError

    def required_settings(self):
        """(field, label) pairs this connection must have set, for its auth method."""
        return [("base_url", "Base URL")]

    def default_token_url(self):
        """Where the token request goes when the connection sets no token URL; "" for a connector without one."""
        return ""

    def secret_destinations(self):
        """Every address this connection may send a stored secret, or a token made from one, to, whichever its
        auth method: the base URL, the token URL and the host options, or this kind's defaults for them. A change
        that moves any of them must carry the secrets again (app/itsm/connections.py)."""
        return {self.base_url, self.token_url()} - {""}

    # --- Shared ---------------------------------------------------------------------

    def validate_settings(self):
        """"Validate Settings": the settings are complete and the ITSM accepts them. Returns a message."""
        missing = [label for field, label in self.required_settings()
                   if not str(getattr(self.connection, field, "") or self.connection.option(field)).strip()]
        if missing:
            raise ItsmSettingsError(f"{self.describe()} is missing: {', '.join(missing)}")
        if self.auth_methods and self.connection.auth_method not in self.auth_methods:
            raise ItsmSettingsError(f"{self.describe()}: choose an authentication method: "
                                    f"{', '.join(self.auth_methods)}")
        detail = self.check()
        return f"Settings OK: {self.describe()} answered{f' ({detail})' if detail else ''}."

    @property
    def base_url(self):
        return (self.connection.base_url or "").strip().rstrip("/")

    def request(self, method, url, *, what, expect_json=True, not_found_ok=False, **kwargs):
        """One HTTP call; returns the decoded JSON (or the response), None for an allowed 404."""
        parts = urlsplit(url)
        started = time.perf_counter()
        try:
            # Only where app/egress.py allows, checked on the address connected to (private: internal=true).
            with checked_session(internal=is_internal(self.connection)) as session:
                response = session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except EgressRefused as error:
            raise ItsmSettingsError(f"{self.describe()}: refusing to connect for {what}: {error}") from None
        except requests.Timeout:
            raise ItsmError(f"{self.describe()} did not answer {what} within {self.timeout} s") from None
        except requests.RequestException as error:
            raise ItsmError(f"{self.describe()} could not be reached at {parts.netloc} for {what}: "
                            f"{error.__class__.__name__}") from None
        log.info("ITSM %s %s %s%s -> %s in %.0f ms", self.name, method, parts.netloc, parts.path,
                 response.status_code, (time.perf_counter() - started) * 1000)
        if response.status_code == 404 and not_found_ok:
            return None
        if response.status_code in (401, 403):
            raise ItsmCredentialsRefused(f"{self.describe()} refused the credentials for {what} "
                                         f"(HTTP {response.status_code}); check the user, key or token and its "
                                         "permissions", response.status_code)
        if 300 <= response.status_code < 400:
            raise ItsmError(f"{self.describe()} redirected {what} (HTTP {response.status_code}) to "
                            f"{response.headers.get('Location', 'another address')}; check the base URL")
        if not 200 <= response.status_code < 300:
            raise ItsmError(f"{self.describe()} answered {what} with HTTP {response.status_code}")
        if not expect_json:
            return response
        try:
            return response.json()
        except ValueError:
            raise ItsmError(f"{self.describe()} answered {what} with something other than JSON; "
                            "check the base URL") from None

    def with_token_renewed_once(self, call):
        """`call()`, once more with a new token if the ITSM refuses a cached one with a 401: an ITSM may revoke
        a token or end it early (Salesforce's session timeout is per org)."""
        self.token_from_cache = False
        try:
            return call()
        except ItsmCredentialsRefused as error:
            if error.status != 401 or not self.token_from_cache:
                raise
        tokens.drop(self.token_key())
        return call()

    def fetch_token(self):  # pragma: no cover - every connector with a token overrides it
        """A new access token (or session) and its lifetime in seconds."""
        raise NotImplementedError

    def access_token(self):
        """This connection's cached access token (or session), else `fetch_token()`'s, cached for its lifetime."""
        key = self.token_key()
        token = tokens.get(key)
        if token:
            self.token_from_cache = True
            return token
        token, lifetime = self.fetch_token()
        tokens.put(key, token, lifetime)
        return token

    def oauth_auth(self):
        """The request's auth: a Bearer token with the OAuth method, else the user name and secret (basic)."""
        connection = self.connection
        if connection.auth_method == AUTH_OAUTH:
            return {"headers": {"Authorization": f"Bearer {self.access_token()}", "Accept": "application/json"}}
        return {"auth": (connection.username, connection.secret), "headers": {"Accept": "application/json"}}

    def oauth_form(self, password_grant=False):
        """The token request's form: the refresh-token grant when one is stored, else (where the ITSM takes it)
        the password grant when a user name and secret are, else client credentials."""
        connection = self.connection
        form = {"client_id": connection.client_id, "client_secret": connection.client_secret}
        if connection.refresh_token:
            form.update(grant_type="refresh_token", refresh_token=connection.refresh_token)
        elif password_grant and connection.username and connection.secret:
            form.update(grant_type="password", username=connection.username, password=connection.secret)
        else:
            form.update(grant_type="client_credentials")
        return form

    def first_record(self, answer, key, what):
        """The first of the records listed under `key` in a query's answer, None when there is none;
        ItsmError when the answer lists none at all."""
        records = answer.get(key) if isinstance(answer, dict) else None
        if not isinstance(records, list):
            raise ItsmError(f"{self.describe()} answered {what} without a `{key}` list")
        return records[0] if records else None

    def token_url(self):
        """The connection's token URL, else this kind's default (default_token_url)."""
        return (self.connection.token_url or "").strip() or self.default_token_url()

    def request_token(self, what, advice, **body):
        """POST a token request to token_url(); the answer's JSON object, ItsmError ending in `advice` when it
        holds no access token."""
        answer = self.request("POST", self.token_url(), what=what, **body)
        if not isinstance(answer, dict) or not answer.get("access_token"):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise ItsmError(f"{self.describe()} gave no access token{f' ({error})' if error else ''}; {advice}")
        return answer

    def token_key(self):
        """Cache key for this connection's access token: changes when its credentials change."""
        connection = self.connection
        return (connection.sys_id, connection.updated_at, connection.client_id, connection.username)
