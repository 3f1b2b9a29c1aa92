"""Sign-in throttling, stored in the database so every worker and host counts the same failures.

Two limits, as a person guessing passwords would meet them:

- an account: 5 failed browser sign-ins in 15 minutes refuse further sign-ins to that
  name (known or not, so the refusal says nothing about which names exist) until the
  oldest of them is 15 minutes old;
- an address: 20 failures of any kind (sign-in or HTTP Basic) in a minute refuse
  every authentication from it until the minute has passed.

HTTP Basic failures (EPM's webhook, the JSON API) count only against the address:
counting them against the `api` account would let anyone stop EPM's deliveries by
guessing wrong on purpose. Refused attempts are not counted, so a lock always ends.
Each lock is written to the audit log when it begins.
"""
from dataclasses import dataclass
from datetime import timedelta

from flask import g, has_request_context

from app.audit import service as audit
from app.auth.models import AuthFailure
from app.db import write_transaction
from app.errors import BrokerError
from app.models import utcnow

SIGN_IN = "sign_in"
BASIC = "basic"

ACCOUNT_LIMIT = 5
ACCOUNT_WINDOW = timedelta(minutes=15)
ADDRESS_LIMIT = 20
ADDRESS_WINDOW = timedelta(minutes=1)
KEEP_FOR = timedelta(days=1)

AUDIT_ACTION = "auth_throttled"


class TooManyAttempts(BrokerError):
    """Authentication refused for a while; `retry_after` says how long in seconds."""

    status = 429

    def __init__(self, retry_after):
        super().__init__("Too many failed attempts; try again later",
                         f"retry after {retry_after} seconds", extra={"retry_after": retry_after})
        self.retry_after = retry_after


@dataclass(frozen=True)
class Limit:
    what: str
    limit: int
    window: timedelta


ACCOUNT = Limit("account", ACCOUNT_LIMIT, ACCOUNT_WINDOW)
ADDRESS = Limit("address", ADDRESS_LIMIT, ADDRESS_WINDOW)


def _failures(limit, key, now):
    """The failures that count against `key` under `limit` at `now`."""
    query = AuthFailure.select(AuthFailure.created_at).where(AuthFailure.created_at > now - limit.window)
    if limit is ACCOUNT:
        return query.where(AuthFailure.username == key, AuthFailure.kind == SIGN_IN)
    return query.where(AuthFailure.source_address == key)


def _wait_seconds(limit, key, now):
    """Seconds until `key` may try again under `limit`, or 0 when it may now."""
    if not key:
        return 0
    newest = _failures(limit, key, now).order_by(AuthFailure.created_at.desc()).limit(limit.limit)
    recent = [row.created_at for row in newest]
    if len(recent) < limit.limit:
        return 0
    # The lock lifts when the limit-th newest failure leaves the window.
    return max(1, int((recent[-1] + limit.window - now).total_seconds()) + 1)


def check(username, address, kind):
    """Raise TooManyAttempts when this attempt must be refused before its password is even checked."""
    now = utcnow()
    wait = _wait_seconds(ADDRESS, address, now)
    if kind == SIGN_IN:
        wait = max(wait, _wait_seconds(ACCOUNT, _account_key(username), now))
    if wait:
        if has_request_context():
            g.throttle_retry_after = wait  # for the Retry-After header (app/http.py)
        raise TooManyAttempts(wait)


def _account_key(username):
    return (username or "")[:150] or None


def record_failure(username, address, kind):
    """Count a failed attempt; writes an audit entry when it is the one that starts a lock."""
    now = utcnow()
    username = _account_key(username)
    address = (address or "")[:64] or None
    with write_transaction():
        AuthFailure.create(kind=kind, username=username, source_address=address, created_at=now)
        AuthFailure.delete().where(AuthFailure.created_at < now - KEEP_FOR).execute()
    locks = []
    if address and _failures(ADDRESS, address, now).count() == ADDRESS.limit:
        locks.append((ADDRESS, address))
    if kind == SIGN_IN and username and _failures(ACCOUNT, username, now).count() == ACCOUNT.limit:
        locks.append((ACCOUNT, username))
    for limit, key in locks:
        audit.record(AUDIT_ACTION, username or "(blank)", limit.what, key,
                     {"failures": limit.limit, "window_seconds": int(limit.window.total_seconds()), "kind": kind},
                     source_address=address)
