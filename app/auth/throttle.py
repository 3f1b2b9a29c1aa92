"""Sign-in throttling, stored in the database so every worker and host counts the same failures.

Three limits, as a person guessing passwords would meet them:

- a person's account (any name but the `api` account's, known or not, so the refusal
  says nothing about which names exist): 5 failures in 15 minutes, by any door
  (the browser form or HTTP Basic on the JSON API), refuse every door to that name
  until the oldest of them is 15 minutes old;
- the `api` account: 20 failures in a minute from one address refuse that account
  from that address only, so nobody guessing from elsewhere can stop EPM's deliveries;
- an address: 20 failures of any kind in a minute refuse every authentication from it
  until the minute has passed, except the `api` account's (guesses at other names
  from an address EPM shares never block EPM).

A refusal says until when ("try again after HH:MM UTC"). Refused attempts are not
counted, so a lock always ends; an admin can end it sooner (`unlock`). Each lock is
written to the audit log when it begins.
"""
import math
from dataclasses import dataclass
from datetime import timedelta

from flask import g, has_request_context

from app import contract
from app.audit import service as audit
from app.auth.models import AuthFailure
from app.db import write_transaction
from app.errors import BrokerError
from app.models import Account, utcnow

SIGN_IN = "sign_in"
BASIC = "basic"

ACCOUNT_LIMIT = 5
ACCOUNT_WINDOW = timedelta(minutes=15)
ADDRESS_LIMIT = 20
ADDRESS_WINDOW = timedelta(minutes=1)
KEEP_FOR = timedelta(days=1)

AUDIT_ACTION = "auth_throttled"


def until_text(until):
    """`until` as people read it on a clock: the next whole minute, in UTC."""
    minute = until.replace(second=0, microsecond=0)
    if minute < until:
        minute += timedelta(minutes=1)
    return minute.strftime("%H:%M UTC")


class TooManyAttempts(BrokerError):
    """Authentication refused for a while; `retry_after` says how long in seconds, `until` until when."""

    status = 429

    def __init__(self, retry_after, until):
        self.retry_after = retry_after
        self.until = until
        super().__init__(f"Too many failed attempts; try again after {until_text(until)}",
                         f"retry after {retry_after} seconds", extra={"retry_after": retry_after})


@dataclass(frozen=True)
class Limit:
    what: str
    limit: int
    window: timedelta


ACCOUNT = Limit("account", ACCOUNT_LIMIT, ACCOUNT_WINDOW)
API_ACCOUNT = Limit("account", ADDRESS_LIMIT, ADDRESS_WINDOW)
ADDRESS = Limit("address", ADDRESS_LIMIT, ADDRESS_WINDOW)


def _failures(limit, key, now):
    """The failures that count against `key` under `limit` at `now`."""
    query = AuthFailure.select(AuthFailure.created_at).where(AuthFailure.created_at > now - limit.window)
    if limit is ACCOUNT:
        return query.where(AuthFailure.username == key)
    if limit is API_ACCOUNT:
        username, address = key
        return query.where(AuthFailure.username == username, AuthFailure.source_address == address)
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
    return max(1, math.ceil((recent[-1] + limit.window - now).total_seconds()))


def _is_api_account(username):
    return bool(username) and Account.select().where(
        Account.username == username, Account.role == contract.ROLE_API).exists()


def _limits(username, address):
    """The (limit, key) pairs an attempt at `username` from `address` meets."""
    if _is_api_account(username):
        return [(API_ACCOUNT, (username, address))]
    return [(ADDRESS, address), (ACCOUNT, username)]


def check(username, address, kind):
    """Raise TooManyAttempts when this attempt must be refused before its password is even checked.

    `kind` (SIGN_IN or BASIC) makes no difference: every door meets the same locks.
    """
    now = utcnow()
    username = _account_key(username)
    wait = max(_wait_seconds(limit, key, now) for limit, key in _limits(username, address))
    if wait:
        if has_request_context():
            g.throttle_retry_after = wait  # for the Retry-After header (app/http.py)
        raise TooManyAttempts(wait, now + timedelta(seconds=wait))


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
    locks = [(limit, key) for limit, key in _limits(username, address)
             if key and (limit is not API_ACCOUNT or address)
             and _failures(limit, key, now).count() == limit.limit]
    for limit, key in locks:
        audit.record(AUDIT_ACTION, username or "(blank)", limit.what, username if limit is API_ACCOUNT else key,
                     {"failures": limit.limit, "window_seconds": int(limit.window.total_seconds()), "kind": kind},
                     source_address=address)


def locked_until(username):
    """When the lock on `username` ends (any address, for the `api` account), or None when it is not locked."""
    username = _account_key(username)
    if not username:
        return None
    now = utcnow()
    if _is_api_account(username):
        addresses = AuthFailure.select(AuthFailure.source_address).distinct().where(
            AuthFailure.username == username, AuthFailure.created_at > now - API_ACCOUNT.window)
        wait = max((_wait_seconds(API_ACCOUNT, (username, row.source_address), now) for row in addresses), default=0)
    else:
        wait = _wait_seconds(ACCOUNT, username, now)
    return now + timedelta(seconds=wait) if wait else None


def unlock(username):
    """Forget every failure counted against `username`, ending its lock at once; returns how many."""
    with write_transaction():
        return AuthFailure.delete().where(AuthFailure.username == _account_key(username)).execute()


class Attempt:
    """One attempt at a person's credential (password or second-factor code) from `address`, under the throttle.

    Made before the credential is checked: `refused` is the TooManyAttempts that stops it there (None when it may
    go on); `failed()` counts a wrong credential. Every form that takes a credential uses it, so none forgets
    either half."""

    def __init__(self, username, address, door=SIGN_IN):
        self.username, self.address, self.door = username, address, door
        try:
            check(username, address, door)
            self.refused = None
        except TooManyAttempts as error:
            self.refused = error

    @property
    def retry_headers(self):
        return {"Retry-After": str(self.refused.retry_after)} if self.refused else {}

    def failed(self):
        record_failure(self.username, self.address, self.door)
