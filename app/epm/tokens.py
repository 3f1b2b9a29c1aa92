"""EPM access tokens, one per set of credentials, shared by every process and host through the database.

One process fetches at a time under a claim on the token's row (app/claims.py), sparing EPM's limits;
a caller inside a transaction, or a failing database, fetches alone: sharing must never stop a decision."""
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
POLL_SECONDS = 0.05

# Module-level so tests can move time: _clock for this process's cache, _wall_clock for stored rows.
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
    """(lifetime, seconds until renewal) for `expires_in` (whole seconds; None: the default hour); a
    short-lived token is renewed at half its life, not never reused."""
    lifetime = expires_in if isinstance(expires_in, int) and expires_in > 0 else DEFAULT_LIFETIME_SECONDS
    return lifetime, lifetime - min(RENEW_MARGIN_SECONDS, lifetime / 2)


def _cached(key, stale):
    cached = _tokens.get(key)
    return cached.value if cached and cached.value != stale and _clock() < cached.renew_at else None


def get_token(key, fetch, *, stale=None, shared=False, claim_seconds=10 + CLAIM_MARGIN_SECONDS):
    """The token for `key`, from `fetch()` -> (access_token, expires_in) when missing, due, or the `stale` one
    EPM just refused (requests-oauthlib does not renew client-credentials tokens: its issue 260)."""
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
            _tokens[key] = CachedToken(value, _clock() + _lifetime(expires_in)[1])
        return value


def _share_token(key, fetch, stale, claim_seconds):
    """Cache the stored token, or fetch one under the claim on its row and store it for the others."""
    from app.epm.models import EpmToken

    where = EpmToken.key == storage_key(key)
    holder = claims.new_holder_id(f"token-{threading.get_ident()}")
    EpmToken.insert(key=storage_key(key)).on_conflict_ignore().execute()
    while True:
        row, now = EpmToken.get_or_none(where), _wall_clock()
        if row is None:  # deleted meanwhile (the credentials changed): fetch for this process
            return
        if row.access_token and row.access_token != stale and row.renew_at and now < row.renew_at:
            _tokens[key] = CachedToken(row.access_token, _clock() + (row.renew_at - now).total_seconds())
            return
        # Only a claim on the token this process saw: one stored meanwhile is read instead. While
        # another's claim runs, trying is a write transaction bound to fail (on SQLite, the write lock).
        held = row.claimed_until is not None and row.claimed_until > now
        if not held and claims.claim(EpmToken, where & (EpmToken.generation == row.generation), claim_seconds,
                                     holder=holder, now=now):
            break
        time.sleep(POLL_SECONDS)  # another process is fetching; its claim runs out if it died
    try:
        value, expires_in = fetch()
    except Exception:
        refused = {"access_token": None, "renew_at": None} if stale is not None else {}
        claims.release(EpmToken, where & (EpmToken.holder == holder), holder=None, **refused)
        raise
    (lifetime, renew_after), now = _lifetime(expires_in), _wall_clock()
    _tokens[key] = CachedToken(value, _clock() + renew_after)
    claims.release(EpmToken, where, holder=None, access_token=value, fetched_at=now, generation=EpmToken.generation + 1,
                   renew_at=now + timedelta(seconds=renew_after), expires_at=now + timedelta(seconds=lifetime))


def forget_stored_tokens():
    """Delete every stored token: the EPM credentials changed, and a token must not outlive them."""
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
    """Forget every token this process keeps in memory, as a newly started process would; stored tokens stay."""
    _tokens.clear()
