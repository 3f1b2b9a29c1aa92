"""EPM access tokens: one per set of credentials, shared by every process and host of a deployment.

A deployment runs several gunicorn workers, a scheduler and perhaps more hosts; each
fetching its own token would multiply token requests against EPM's limits. So:
- a process keeps the token in memory, and a call that finds it there touches nothing else;
- clients built from the stored configuration (`shared`) take the token stored in the
  database (EpmToken, encrypted) before fetching one;
- one process at a time fetches, under a claim on the token's row (app/claims.py): not a
  lock held across the HTTP call, so writers are never stalled by a slow token endpoint; the
  others wait for the stored result, and take the claim over if its holder died;
- a token is renewed shortly before it expires and after the API refused it (a 401: EPM
  drops tokens when the client secret is regenerated), because requests-oauthlib does not
  renew client-credentials tokens by itself (its issue 260).
A caller holding a transaction open, or a database that fails, fetches for its process
alone: sharing saves token requests, it must never stop a decision.
"""
import hashlib
import logging
import threading
import time
from collections import namedtuple
from contextlib import nullcontext
from datetime import timedelta

import peewee

from app import claims
from app.db import database

log = logging.getLogger(__name__)

RENEW_MARGIN_SECONDS = 60
DEFAULT_LIFETIME_SECONDS = 3600
CLAIM_MARGIN_SECONDS = 2  # a fetch's claim lasts the request's time-out plus this
POLL_SECONDS = 0.05  # how often a process waiting for another's fetch looks for the result

# Module-level so tests can move time without sleeping: _clock for this process's cache,
# _wall_clock (the database's) for stored tokens and claims.
_clock = time.monotonic
_wall_clock = claims.database_now

CachedToken = namedtuple("CachedToken", "value renew_at")  # renew_at on the _clock() scale
_tokens = {}
_fetching = threading.Lock()  # one fetch at a time in this process; never held by a cache hit
_fetch_count = 0


def cache_key(base_url, token_path, client_id, client_secret):
    """The cache key for one set of credentials; the secret enters only as a digest."""
    return (base_url, token_path, client_id, hashlib.sha256(client_secret.encode("utf-8")).hexdigest())


def storage_key(key):
    """The database key for a cache key: a digest of it, so the row names neither tenant nor secret."""
    return hashlib.sha256("\n".join(key).encode("utf-8")).hexdigest()


def _lifetime(expires_in):
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME_SECONDS
    return lifetime if lifetime > 0 else DEFAULT_LIFETIME_SECONDS


def _renew_after(lifetime):
    # A short-lived token is renewed at half its life rather than never being reused.
    return lifetime - min(RENEW_MARGIN_SECONDS, lifetime / 2)


def _cached(key, stale):
    cached = _tokens.get(key)
    return cached.value if cached and cached.value != stale and _clock() < cached.renew_at else None


def get_token(key, fetch, *, stale=None, shared=False, claim_seconds=10 + CLAIM_MARGIN_SECONDS):
    """The access token for `key`; `fetch()` makes a token request and returns (access_token, expires_in).

    Fetches when there is no token, it is due for renewal, or it equals `stale` (the token
    the API just refused). With `shared`, the token goes through the database (module
    docstring); `claim_seconds` is how long a fetch may take before another process takes over.
    """
    value = _cached(key, stale)
    if value is not None:
        return value
    with _fetching:
        value = _cached(key, stale)
        if value is not None:
            return value
        _tokens.pop(key, None)  # a refused token is not offered again should the fetch fail
        if shared and not database.in_transaction():
            try:
                with database.connection_context() if database.is_closed() else nullcontext():
                    _share_token(key, fetch, stale, claim_seconds)
            except peewee.PeeweeException as error:
                log.warning("could not share the EPM access token through the database (%s)", error)
            value = _cached(key, stale)
        if value is None:
            value, expires_in = fetch()
            _tokens[key] = CachedToken(value, _clock() + _renew_after(_lifetime(expires_in)))
        return value


def _share_token(key, fetch, stale, claim_seconds):
    """Put the stored token in this process's cache, or fetch one under the claim on its row and
    store it for the others."""
    from app.epm.models import EpmToken

    where = EpmToken.key == storage_key(key)
    holder = claims.new_holder_id(f"token-{threading.get_ident()}")
    EpmToken.insert(key=storage_key(key)).on_conflict_ignore().execute()
    # Wait at most one claim's length for another process, then fetch regardless. Real time,
    # not _clock: a test that stops _clock must not make this wait for ever.
    give_up_at = time.monotonic() + claim_seconds + 1
    while True:
        row, now = EpmToken.get_or_none(where), _wall_clock()
        if row is None:  # deleted meanwhile (the credentials changed): fetch for this process
            return
        if row.access_token and row.access_token != stale and row.renew_at and now < row.renew_at:
            _tokens[key] = CachedToken(row.access_token, _clock() + (row.renew_at - now).total_seconds())
            return
        # Only a claim on the token this process saw: one stored meanwhile is read instead.
        if claims.claim(EpmToken, where & (EpmToken.generation == row.generation), claim_seconds, holder=holder,
                        now=now):
            break
        if time.monotonic() >= give_up_at:
            log.warning("another process has been fetching the EPM access token for %s s; fetching here",
                        claim_seconds)
            break
        time.sleep(POLL_SECONDS)
    try:
        value, expires_in = fetch()
    except Exception:
        refused = {"access_token": None, "renew_at": None} if stale is not None else {}
        claims.release(EpmToken, where & (EpmToken.holder == holder), holder=None, **refused)
        raise
    lifetime, now = _lifetime(expires_in), _wall_clock()
    _tokens[key] = CachedToken(value, _clock() + _renew_after(lifetime))
    claims.release(EpmToken, where, holder=None, access_token=value, fetched_at=now, generation=EpmToken.generation + 1,
                   renew_at=now + timedelta(seconds=_renew_after(lifetime)), expires_at=now + timedelta(seconds=lifetime))


def forget_stored_tokens():
    """Delete every stored token (the EPM credentials changed): an access token is a credential
    and should not outlive the configuration it came from. Needs a database connection."""
    from app.epm.models import EpmToken

    return EpmToken.delete().execute()


def count_fetch():
    """Note one request to a token endpoint (made by the caller of get_token's fetch)."""
    global _fetch_count
    _fetch_count += 1  # under _fetching: fetch() runs nowhere else


def token_fetch_count():
    """How many token requests this process has made since it started (never reset)."""
    return _fetch_count


def clear_token_cache():
    """Forget every token this process keeps in memory, as a newly started process would; stored
    tokens stay (each test database starts empty; new credentials delete them)."""
    _tokens.clear()
