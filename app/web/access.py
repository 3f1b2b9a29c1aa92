"""Who may see a browser page: the signed-in session, its renewal at sign-in, and role rules.

Anonymous visitors are sent to the sign-in page; a signed-in account without the
page's role gets 403. A session remembers a stamp of the password it was opened
with, so resetting a password ends the sessions opened with the old one.
"""
import hashlib
import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request, session, url_for

from app.auth.basic import session_account
from app.errors import Forbidden
from app.security import sessions


def password_stamp(account):
    """A short keyed digest of the account's stored password hash (never the hash itself)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, account.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def start_session(account):
    """Sign `account` in: a fresh session (new nonce, new CSRF token), nothing kept from before."""
    session.clear()
    session.permanent = True
    session["account_id"] = account.id
    session["nonce"] = secrets.token_urlsafe(24)
    session["stamp"] = password_stamp(account)
    sessions.mark_opened()


def end_session():
    session.clear()


def signed_in_account():
    """The active account of this browser session whose password has not changed since sign-in."""
    account = session_account()
    if account is None:
        return None
    if not sessions.still_valid():
        session.clear()
        return None
    if not hmac.compare_digest(session.get("stamp", ""), password_stamp(account)):
        session.clear()
        return None
    return account


def safe_next(target):
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def require_page_roles(*roles):
    """Let a page run only for a signed-in account holding one of `roles`.

    Anonymous requests are redirected to sign-in and come back afterwards.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            account = signed_in_account()
            if account is None:
                back = request.full_path if request.method == "GET" else None
                return redirect(url_for("web_auth.sign_in", next=safe_next(back and back.rstrip("?"))))
            g.account = account
            if account.role not in roles:
                raise Forbidden(f"The {account.role!r} role may not open this page")
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate
