"""HTTP Basic authentication for EPM's deliveries and the JSON API, and role rules.

A scrypt check costs ~100 ms of CPU; paying it per webhook would cap intake near
20 deliveries/s. Successful checks are remembered for a short while, keyed by an
HMAC of user name, password and the stored hash: the password itself is never
kept, and changing the password (a new stored hash) invalidates the entry.

Reading the account and the sign-in throttle on every request would still cost two
queries each time, so each process keeps the accounts it read, and the (name, address)
pairs it found not throttled, for ACCOUNT_CACHE_SECONDS (one second). The broker's own
account changes forget them at once in the process that made them (`forget_accounts`);
every other worker and host sees a deactivation, a new role or password within that
second. A wrong password is never answered from memory: it always meets the throttle,
which counts it with the browser's failures (app/auth/throttle.py: one lock per person's
account across every door; the `api` account's failures count per address).
"""
import hashlib
import hmac
import threading
import time
import weakref
from collections import OrderedDict
from functools import wraps

from flask import current_app, g, request
from flask_login import current_user

from app import events
from app.auth import steps
from app.auth.accounts import password_matches, previous_password_matches
from app.auth.sessions import signed_in_through_idp
from app.errors import Forbidden, Unauthorized
from app.models import Account
from app.auth import throttle


ACCOUNT_CACHE_SECONDS = 1.0

_account_caches = weakref.WeakSet()


def forget_accounts(_sender=None):
    """Drop every account this process remembers (`account_changed`'s receiver)."""
    for cache in list(_account_caches):
        cache.forget()


class AccountCache:
    """Accounts read in the last `lifetime` seconds, by user name, and the (name, address)
    pairs the sign-in throttle let through in that time; one per app."""

    def __init__(self, lifetime=ACCOUNT_CACHE_SECONDS):
        self.lifetime = lifetime
        self._by_name = {}
        self._unthrottled = {}
        self._lock = threading.Lock()
        _account_caches.add(self)

    def _remembered(self, entries, key):
        entry = entries.get(key)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else None

    def _remember(self, account):
        expires = time.monotonic() + self.lifetime
        with self._lock:
            self._by_name[account.username] = (account, expires)

    def by_username(self, username):
        """The account named `username` (None when there is none; that is never remembered)."""
        account = self._remembered(self._by_name, username)
        if account is None:
            account = Account.by_username(username)
            if account is not None:
                self._remember(account)
        return account

    def recently_unthrottled(self, username, address):
        """True when `username` from `address` passed the sign-in throttle within the lifetime."""
        return self._remembered(self._unthrottled, (username, address)) is not None

    def check_throttle(self, username, address):
        """throttle.check for an HTTP Basic attempt; remembers an address it let through."""
        throttle.check(username, address, throttle.BASIC)
        with self._lock:
            self._unthrottled[(username, address)] = (True, time.monotonic() + self.lifetime)

    def record_failure(self, username, address):
        # A failure may lock an account or an address: whatever passed a moment ago meets the throttle again.
        with self._lock:
            self._unthrottled.clear()
        throttle.record_failure(username, address, throttle.BASIC)

    def forget(self):
        with self._lock:
            self._by_name.clear()
            self._unthrottled.clear()


class VerificationCache:
    """A bounded, expiring set of recently verified credential digests."""

    def __init__(self, secret_key, lifetime_seconds, max_entries=1024):
        self._key = hashlib.sha256(b"basic-auth-cache:" + secret_key.encode()).digest()
        self.lifetime = lifetime_seconds
        self.max_entries = max_entries
        self._entries = OrderedDict()
        self._lock = threading.Lock()
        self._checking = {}  # digest -> the lock held while one thread checks that credential
        self.verifications = 0  # full password checks performed, for the regression test

    def digest(self, username, password, password_hash):
        message = "\0".join((username, password, password_hash)).encode()
        return hmac.digest(self._key, message, "sha256")  # one call into OpenSSL

    def remembers(self, account, username, password):
        """True when this very credential was verified for `account` within the lifetime."""
        return self._remembered(self.digest(username, password, account.password_hash))

    def _remembered(self, digest):
        with self._lock:
            expires = self._entries.get(digest)
        return expires is not None and expires > time.monotonic()

    def verify(self, account, username, password):
        """True when `password` is the account's; pays the full check only on a cache miss.

        Threads of one worker that miss on the same credential at once (a gthread
        worker's first deliveries) wait for the first one's check instead of each
        paying its own: one verification per credential per lifetime, not one per thread.
        """
        if account is None:
            password_matches(None, password)
            return False
        digest = self.digest(username, password, account.password_hash)
        if self._remembered(digest):
            return True
        with self._lock:
            checking = self._checking.get(digest)
            if checking is None:
                checking = self._checking[digest] = threading.Lock()
        with checking:
            try:
                # A check another thread finished while this one waited answers for it;
                # a credential it refused is checked again (a wrong password is never remembered).
                return self._remembered(digest) or self._check(account, password, digest)
            finally:
                with self._lock:
                    self._checking.pop(digest, None)

    def _check(self, account, password, digest):
        self.verifications += 1
        if not (password_matches(account, password) or previous_password_matches(account, password)):
            return False
        with self._lock:
            self._entries[digest] = time.monotonic() + self.lifetime
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return True


def init_app(app, settings):
    app.extensions["verification_cache"] = VerificationCache(settings.secret_key, settings.auth_cache_seconds)
    app.extensions["account_cache"] = AccountCache()
    events.account_changed.connect(forget_accounts)


def basic_account():
    """The active account named by valid Basic credentials, None when none were sent.

    Raises Unauthorized for wrong credentials or an inactive account.
    """
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        return None
    username, password = credentials.username or "", credentials.password or ""
    extensions = current_app.extensions
    accounts, cache = extensions["account_cache"], extensions["verification_cache"]
    account = accounts.by_username(username)
    # The common case costs no query and no password check: the active account of a credential
    # verified a moment ago, from an address the throttle let through a moment ago. Anything
    # else, a wrong password above all, meets the throttle.
    if account is not None and account.active and cache.remembers(account, username, password) and \
            accounts.recently_unthrottled(username, request.remote_addr):
        return account
    accounts.check_throttle(username, request.remote_addr)
    if not cache.verify(account, username, password) or not account.active:
        accounts.record_failure(username, request.remote_addr)
        raise Unauthorized("Invalid user name or password")
    return account


def require_roles(*roles, allow_session=True):
    """Let a view run only for an account holding one of `roles` (401 unknown, 403 wrong role).

    Basic credentials come first; with `allow_session`, a signed-in browser session
    (app/auth/sessions.py) serves too. A person's account that owes a step (app/auth/steps.py:
    an admin-set password still unchanged, a second factor the settings require) is refused by
    either door; Basic also refuses a person who signs in with a second factor (it carries only
    the password). The `api` and `reader` accounts owe none (admins set them on purpose).
    """

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            account = basic_account()
            refusal = None if account is None else steps.basic_refusal(account)
            if account is None and allow_session and current_user.is_authenticated:
                account = current_user._get_current_object()
                step = steps.outstanding_step(account, assured_by_idp=signed_in_through_idp())
                refusal = steps.STEP_MESSAGES[step] if step else None
            if account is None:
                raise Unauthorized("Authentication required")
            if account.role not in roles:
                raise Forbidden(f"The {account.role!r} role may not do this")
            if refusal is not None:
                raise Forbidden(refusal)
            g.account = account
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
