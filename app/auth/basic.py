"""HTTP Basic authentication for EPM's deliveries and the JSON API, and role rules.

A scrypt check costs ~100 ms of CPU; paying it per webhook would cap intake near
20 deliveries/s. Successful checks are remembered for a short while, keyed by an
HMAC of user name, password and the stored hash: the password itself is never
kept, and changing the password (a new stored hash) invalidates the entry.
"""
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from functools import wraps

from flask import current_app, g, request, session

from app.auth.accounts import password_matches, previous_password_matches
from app.errors import Forbidden, Unauthorized
from app.models import Account
from app.security import throttle


class VerificationCache:
    """A bounded, expiring set of recently verified credential digests."""

    def __init__(self, secret_key, lifetime_seconds, max_entries=1024):
        self._key = hashlib.sha256(b"basic-auth-cache:" + secret_key.encode()).digest()
        self.lifetime = lifetime_seconds
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self.verifications = 0  # full password checks performed, for the regression test

    def digest(self, username, password, password_hash):
        message = "\0".join((username, password, password_hash)).encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def verify(self, account, username, password):
        """True when `password` is the account's; pays the full check only on a cache miss."""
        if account is None:
            password_matches(None, password)
            return False
        digest = self.digest(username, password, account.password_hash)
        now = time.monotonic()
        with self._lock:
            expires = self._entries.get(digest)
            if expires is not None and expires > now:
                return True
        self.verifications += 1
        if not (password_matches(account, password) or previous_password_matches(account, password)):
            return False
        with self._lock:
            self._entries[digest] = now + self.lifetime
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True


def init_app(app, settings):
    app.extensions["verification_cache"] = VerificationCache(settings.secret_key, settings.auth_cache_seconds)


def basic_account():
    """The active account named by valid Basic credentials, None when none were sent.

    Raises Unauthorized for wrong credentials or an inactive account.
    """
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    username, password = credentials.username or "", credentials.password or ""
    # Failed Basic checks count against the address only, never the account: EPM's
    # `api` account must not be lockable by someone guessing wrong on purpose.
    throttle.check(username, request.remote_addr, throttle.BASIC)
    account = Account.by_username(username)
    cache = current_app.extensions["verification_cache"]
    if not cache.verify(account, username, password) or not account.active:
        throttle.record_failure(username, request.remote_addr, throttle.BASIC)
        raise Unauthorized("Invalid user name or password")
    return account


def session_account():
    """The active account signed in to this browser session, or None."""
    account_id = session.get("account_id")
    if account_id is None:
        return None
    account = Account.get_or_none(Account.id == account_id)
    return account if account is not None and account.active else None


def require_roles(*roles, allow_session=True):
    """Let a view run only for an account holding one of `roles` (401 unknown, 403 wrong role)."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            account = basic_account() or (session_account() if allow_session else None)
            if account is None:
                raise Unauthorized("Authentication required")
            if account.role not in roles:
                raise Forbidden(f"The {account.role!r} role may not do this")
            g.account = account
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
