"""EPM access tokens: one per tenant and client credentials, shared by every process of a deployment.

Every EpmClient built for the same base URL, token path, client ID and secret shares
one token. Within a process it is kept in memory, so a call that finds it there does
not touch the database. Clients built from the stored configuration (`shared=True`)
also share it with the other processes and hosts through the database (the
EpmToken table, token encrypted): a process without a usable token in memory takes
the stored one, and only when there is none (or it is due for renewal, or the API
just refused it) does one process fetch a new one, while the others wait for it. So a
deployment makes one token request per token lifetime, however many gunicorn workers,
schedulers and hosts it runs.

The process that fetches first takes a short claim on the row (a conditional UPDATE
in its own short transaction, never a lock held across the HTTP call, so SQLite
writers are not stalled by a slow token endpoint); the others poll for the new token
and take the claim over if it runs out (the fetching process died). A token is
renewed shortly before it expires; a 401 from the API replaces it for everyone (EPM
invalidates tokens when the client secret is regenerated, contract/epm.md §2), and a
new client secret gives a new key, so a token is never used with other credentials
than the ones that fetched it. requests-oauthlib does not renew client-credentials
tokens by itself (its issue 260), so the renewal lives here.

If the database cannot be used for this (unreachable, locked beyond its time-out, the
table not created yet, or the caller holds a transaction open), the process fetches
and keeps its own token as before: sharing saves token requests, it must never stop
a decision.
"""
import hashlib
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import peewee

log = logging.getLogger(__name__)

RENEW_MARGIN_SECONDS = 60
DEFAULT_LIFETIME_SECONDS = 3600
# A claim lasts the token request's time-out plus this, so it outlives a live fetch.
CLAIM_MARGIN_SECONDS = 2
DEFAULT_CLAIM_SECONDS = 10 + CLAIM_MARGIN_SECONDS
# How often a process waiting for another's token request looks for the result.
POLL_SECONDS = 0.05

# Module-level so tests can move time without sleeping (monkeypatch `tokens._clock`).
_clock = time.monotonic


def _database_now():
    """The current UTC time (naive): the database's clock on PostgreSQL, so hosts agree, else this host's."""
    from app.jobs.lease import database_now

    return database_now()


# The wall clock stored expiries and claims are read against; tests move it like `_clock`.
_wall_clock = _database_now

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
    """Seconds after its fetch when a token living `lifetime` seconds should be replaced."""
    # A short-lived token is renewed at half its life rather than never being reused.
    return lifetime - min(RENEW_MARGIN_SECONDS, lifetime / 2)


def renew_at(expires_in):
    """When a token that lives `expires_in` seconds should be replaced, on the _clock() scale."""
    return _clock() + _renew_after(_lifetime(expires_in))


def get_token(key, fetch, *, stale=None, shared=False, claim_seconds=DEFAULT_CLAIM_SECONDS):
    """The access token for `key`, calling `fetch()` when there is none, it is due for renewal, or
    it equals `stale` (the token the API just refused).

    `fetch()` makes the token request and returns (access_token, expires_in). Callers
    in this process wait for one fetch instead of each making their own; a caller
    whose stale token was already replaced uses the replacement. With `shared`, the
    token is also taken from and stored in the database for the other processes;
    `claim_seconds` is how long a fetch may take before another process takes over.
    """
    with _lock:
        fetch_lock = _fetch_locks.setdefault(key, threading.Lock())
    with fetch_lock:
        with _lock:
            cached = _tokens.get(key)
        if cached is not None and cached.value != stale and _clock() < cached.renew_at:
            return cached.value
        if shared:
            value = _shared_token(key, fetch, stale, claim_seconds)
            if value is not None:
                return value
        return _fetch_here(key, fetch, stale, cached)


def _remember(key, value, renew_in_seconds):
    with _lock:
        _tokens[key] = CachedToken(value, _clock() + renew_in_seconds)


def _forget(key, value):
    """Drop `value` from this process's cache if it is still the cached token for `key`."""
    with _lock:
        if key in _tokens and _tokens[key].value == value:
            del _tokens[key]


def _fetch_here(key, fetch, stale, cached):
    """Fetch a token for this process alone (no database, or the database cannot be used)."""
    try:
        value, expires_in = fetch()
    except Exception:
        if stale is not None and cached is not None:
            # The API refused it and no replacement came: don't offer it to the next call.
            _forget(key, cached.value)
        raise
    _remember(key, value, _renew_after(_lifetime(expires_in)))
    return value


# --- The token shared through the database ------------------------------------------------

class _StoreUnusable(Exception):
    """The database cannot hold the shared token right now; the process fetches its own."""


def _holder_id():
    """Who holds a claim: unique across hosts, processes and threads."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{threading.get_ident()}"


@contextmanager
def _connection():
    """The database for the token store: this thread's connection, opened (and closed) if needed."""
    from app.db import database

    if database.obj is None:
        raise _StoreUnusable("no database is configured")
    if database.in_transaction():
        # Claims and tokens written inside the caller's transaction would stay invisible
        # to the others until it commits (and on SQLite would hold its lock meanwhile).
        raise _StoreUnusable("the caller holds a transaction open")
    opened = database.is_closed()
    try:
        if opened:
            database.connect()
        yield database
    except (peewee.DatabaseError, peewee.InterfaceError) as error:
        raise _StoreUnusable(f"{error.__class__.__name__}: {error}") from error
    finally:
        if opened and not database.is_closed():
            database.close()


def _seconds(delta):
    return delta.total_seconds()


def _usable(row, stale, now):
    """The stored token if another process may use it now, else None."""
    if row is None or not row.access_token or row.access_token == stale:
        return None
    if row.renew_at is None or now >= row.renew_at:
        return None
    return row.access_token


def _shared_token(key, fetch, stale, claim_seconds):
    """The token through the database: the stored one, one fetched under a claim, or None when
    the database cannot be used (the caller then fetches for this process alone)."""
    from app.epm.models import EpmToken

    row_key = storage_key(key)
    holder = _holder_id()
    # Wait at most one claim's length for another process; then fetch regardless. Real
    # time, not _clock: a test that stops _clock must not make this wait for ever.
    give_up_waiting_at = time.monotonic() + claim_seconds + 1
    try:
        with _connection():
            while True:
                row = EpmToken.get_or_none(EpmToken.key == row_key)
                now = _wall_clock()
                value = _usable(row, stale, now)
                if value is not None:
                    _remember(key, value, _seconds(row.renew_at - now))
                    return value
                generation = row.generation if row is not None else 0
                if _claim(EpmToken, row_key, holder, generation, now, claim_seconds):
                    break
                if time.monotonic() >= give_up_waiting_at:
                    log.warning("another process has been fetching the EPM access token for %s s; "
                                "fetching one here", claim_seconds)
                    break
                time.sleep(POLL_SECONDS)
    except _StoreUnusable as error:
        log.warning("the shared EPM access token is not usable (%s); this process fetches its own", error)
        return None

    try:
        value, expires_in = fetch()
    except Exception:
        _release(EpmToken, row_key, holder, refused=stale)
        if stale is not None:
            _forget(key, stale)
        raise
    lifetime = _lifetime(expires_in)
    _remember(key, value, _renew_after(lifetime))
    _store(EpmToken, row_key, holder, value, lifetime)
    return value


def _claim(model, row_key, holder, generation, now, claim_seconds):
    """Take the claim to fetch the token after `generation`; True if this process has it.

    Refused while another process's claim runs, or once the token was replaced since
    `generation` was read (the caller then reads the replacement). On PostgreSQL a
    concurrent UPDATE waits for the row and re-checks the condition, so one wins.
    """
    from app.db import write_transaction

    with write_transaction():
        model.insert(key=row_key, generation=0).on_conflict_ignore().execute()
        claimed = (model.update(holder=holder, claimed_until=now + timedelta(seconds=claim_seconds))
                   .where(model.key == row_key, model.generation == generation,
                          model.holder.is_null() | (model.claimed_until < now) | (model.holder == holder))
                   .execute())
    return claimed == 1


def _store(model, row_key, holder, value, lifetime):
    """Store a fetched token for the other processes and give up the claim (best effort)."""
    from app.db import write_transaction

    try:
        with _connection():
            now = _wall_clock()
            with write_transaction():
                # A row deleted meanwhile (the credentials were changed) is not brought back.
                (model.update(access_token=value, fetched_at=now, expires_at=now + timedelta(seconds=lifetime),
                              renew_at=now + timedelta(seconds=_renew_after(lifetime)),
                              generation=model.generation + 1)
                 .where(model.key == row_key).execute())
                model.update(holder=None, claimed_until=None).where(model.key == row_key,
                                                                    model.holder == holder).execute()
    except _StoreUnusable as error:
        log.warning("could not store the EPM access token for the other processes (%s)", error)


def _release(model, row_key, holder, refused=None):
    """Give up the claim after a failed fetch; a `refused` token still stored is withdrawn too."""
    from app.db import write_transaction

    try:
        with _connection():
            with write_transaction():
                model.update(holder=None, claimed_until=None).where(model.key == row_key,
                                                                    model.holder == holder).execute()
                if refused is not None:
                    row = model.get_or_none(model.key == row_key)
                    if row is not None and row.access_token == refused:
                        model.update(access_token=None, renew_at=None, expires_at=None).where(
                            model.key == row_key, model.generation == row.generation).execute()
    except _StoreUnusable as error:
        log.warning("could not release the claim on the EPM access token (%s)", error)


def forget_stored_tokens():
    """Delete every stored token (the EPM credentials changed); needs a database connection.

    Tokens for the old credentials would never be used again (their key differs), but
    an access token is a credential and should not outlive the configuration it came from.
    """
    from app.epm.models import EpmToken

    return EpmToken.delete().execute()


# --- Counting and clearing -------------------------------------------------------------------

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
    """Forget every token this process keeps in memory, so the next call looks in the database
    (shared clients) or fetches a new one, as a newly started process would.

    Stored tokens stay: each test database starts empty, and a change of the EPM
    credentials in the configuration deletes them (forget_stored_tokens).
    """
    with _lock:
        _tokens.clear()
