"""The process-wide cache of EPM access tokens: one token per tenant and client credentials.

Every EpmClient built for the same base URL, token path, client ID and secret shares
one token, so a burst of decisions costs one token request, not one each. A token is
renewed shortly before it expires; a 401 from the API replaces it at once (EPM
invalidates tokens when the client secret is regenerated, contract/epm.md §2).
requests-oauthlib does not renew client-credentials tokens by itself (its issue 260),
so the renewal lives here.
"""
import hashlib
import threading
import time
from dataclasses import dataclass

RENEW_MARGIN_SECONDS = 60
DEFAULT_LIFETIME_SECONDS = 3600

# Module-level so tests can move time without sleeping (monkeypatch `tokens._clock`).
_clock = time.monotonic

_lock = threading.Lock()  # guards the three globals below, never held during HTTP
_tokens = {}
_fetch_locks = {}
_fetch_count = 0


@dataclass(frozen=True)
class CachedToken:
    value: str
    renew_at: float  # on the _clock() scale


def cache_key(base_url, token_path, client_id, client_secret):
    """The cache key for one set of credentials; the secret enters only as a digest."""
    digest = hashlib.sha256(client_secret.encode("utf-8")).hexdigest()
    return (base_url, token_path, client_id, digest)


def renew_at(expires_in):
    """When a token that lives `expires_in` seconds should be replaced, on the _clock() scale."""
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME_SECONDS
    # A short-lived token is renewed at half its life rather than never being reused.
    margin = min(RENEW_MARGIN_SECONDS, lifetime / 2)
    return _clock() + lifetime - margin


def get_token(key, fetch, *, stale=None):
    """The cached access token for `key`, calling `fetch()` when there is none, it is due for
    renewal, or it equals `stale` (the token the API just refused).

    `fetch()` makes the token request and returns (access_token, expires_in). Callers
    for the same key wait for one fetch instead of each making their own; a caller
    whose stale token was already replaced by another thread uses the replacement.
    """
    with _lock:
        fetch_lock = _fetch_locks.setdefault(key, threading.Lock())
    with fetch_lock:
        with _lock:
            cached = _tokens.get(key)
        if cached is not None and cached.value != stale and _clock() < cached.renew_at:
            return cached.value
        try:
            value, expires_in = fetch()
        except Exception:
            if stale is not None:
                # The API refused it and no replacement came: don't offer it to the next call.
                with _lock:
                    if _tokens.get(key) is cached:
                        del _tokens[key]
            raise
        with _lock:
            _tokens[key] = CachedToken(value, renew_at(expires_in))
        return value


def count_fetch():
    """Note one request to a token endpoint (made by the caller of get_token's fetch)."""
    global _fetch_count
    with _lock:
        _fetch_count += 1


def token_fetch_count():
    """How many token requests this process has made since it started (never reset)."""
    with _lock:
        return _fetch_count


def clear_token_cache():
    """Forget every cached token, so the next call fetches a new one (tests, secret changes)."""
    with _lock:
        _tokens.clear()
