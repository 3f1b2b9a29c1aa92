"""Browser sessions through Flask-Login: who a session signs in, and for how long.

Flask-Login keeps the account's id in Flask's signed session cookie and `load_account`
reads it back on each page. Beside it the session holds when it was opened and last
used (seconds since the epoch, signed, so a client cannot move them) and a keyed stamp
of the password it was opened with, and the account's session epoch at sign-in. Past
the idle or the absolute limit from the settings, or once the account is deactivated,
deleted, given a new password or its epoch has moved (sign-out, a new password or role,
deactivation, an admin's "End sessions": `end_all_sessions`), the loader answers None
and the session is over, a copy of the cookie included. Every route a session cookie
opens, pages (app/auth/access.py) and the JSON API (app/auth/basic.py) alike, goes
through this loader. No remember-me cookie is ever set.
"""
import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, make_response, redirect, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user

from app.auth.oidc_client import still_vouched_for
from app.models import Account

OPENED, SEEN, STAMP, NONCE, EPOCH = "opened_at", "seen_at", "stamp", "nonce", "epoch"
# Sent with htmx's HX-Request by a page's own polling (static/live.js): not a person's activity.
BACKGROUND_HEADER = "X-Background-Refresh"

login_manager = LoginManager()
login_manager.login_view = "web_auth.sign_in"
# Freshness is never asked for, and on a permanent session "strong" acts as "basic".
login_manager.session_protection = None


def init_app(app):
    """Session cookie rules and the login manager (its `current_user` is not put in templates:
    an error page, a database outage's among them, must render without loading the account)."""
    settings = app.extensions["settings"]
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_SECURE"] = settings.public_url.lower().startswith("https://")
    # The cookie's own expiry; `load_account` enforces the idle limit too.
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=settings.session_max_hours)
    # The cookie is rewritten when the session changes (sign-in, and the idle stamp every
    # 30 s), not re-signed on every page: the limits live inside it, not in its expiry.
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False
    login_manager.init_app(app, add_context_processor=False)


@login_manager.user_loader
def load_account(account_id):
    """The account signed in to this session while it is within its limits; None ends the session."""
    account = Account.get_or_none(Account.id == int(account_id))
    if account is None or not account.active or session.get(EPOCH) != account.session_epoch or \
            not _within_limits() or not hmac.compare_digest(session.get(STAMP, ""), password_stamp(account)):
        session.clear()
        return None
    if not still_vouched_for(account):  # an identity provider's account: re-checked with it when due
        session.clear()
        return None
    return account


def _within_limits():
    """True when this session is within the idle and absolute limits (and notes this use)."""
    settings = current_app.extensions["settings"]
    now = int(time.time())
    opened, seen = session.get(OPENED), session.get(SEEN)
    if not isinstance(opened, int) or not isinstance(seen, int):
        return False
    if now - opened > settings.session_max_hours * 3600 or now - seen > settings.session_idle_minutes * 60:
        return False
    if now - seen >= 30 and not is_background_refresh():  # no need to rewrite the cookie on every click
        session[SEEN] = now
    return True


def is_background_refresh():
    """True for a page's own polling, which must not keep an idle session alive."""
    return request.headers.get("HX-Request") == "true" and request.headers.get(BACKGROUND_HEADER) == "1"


def password_stamp(account):
    """A short keyed digest of the account's stored password hash (never the hash itself)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, account.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def start_session(account):
    """Sign `account` in: a fresh session (new nonce, new CSRF token), nothing kept from before."""
    session.clear()
    session.permanent = True
    login_user(account)
    now = int(time.time())
    # Read again: a password just set in this request has moved the epoch the caller's copy holds.
    epoch = Account.select(Account.session_epoch).where(Account.id == account.id).scalar()
    session.update({NONCE: secrets.token_urlsafe(24), STAMP: password_stamp(account), OPENED: now, SEEN: now,
                    EPOCH: epoch})


def end_all_sessions(account):
    """End every browser session of `account`, on every device, copies of its cookie included."""
    Account.change(account.id, session_epoch=Account.session_epoch + 1)


def end_session():
    """Sign out: every session of the signed-in account ends, a copy of this cookie included."""
    if current_user.is_authenticated:
        end_all_sessions(current_user)
    logout_user()
    session.clear()


def safe_next(target):
    """`target` when it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


@login_manager.unauthorized_handler
def to_sign_in():
    """Anonymous page requests go to sign-in and come back afterwards; a form post comes back to nothing.

    A request htmx sent from a page (its polling) gets 401 with HX-Redirect, so the whole page goes to
    sign-in and comes back to itself rather than a fragment holding the sign-in form."""
    if request.headers.get("HX-Request") == "true":
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = page.path + (f"?{page.query}" if page.query else "")
        response = make_response("Signed out: sign in again.", 401)
        response.headers["HX-Redirect"] = url_for(login_manager.login_view, next=safe_next(back))
        return response
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for(login_manager.login_view, next=safe_next(back)))
