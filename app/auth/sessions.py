"""Browser sessions through Flask-Login: who a session signs in, and for how long.

Flask-Login keeps the account's id in Flask's signed session cookie and `load_account`
reads it back on each page. Each session also has a record on the server (BrowserSession:
account, when opened and last seen, source address, user agent), named in the cookie by an
opaque id; an admin sees them on the users page and ends one ("End") by deleting its record; a session that
ends any other way (sign-out, a time limit, a refusal found by the loader) loses its record too, and a time-out
nobody comes back to keeps it until no browser can present a cookie naming it any more, when the
`forget_ended_sessions` job drops it. The identity provider's tokens of an account (app/auth/oidc_client.py) go
when its last live session is ended on purpose (sign-out, from a tab whose session already timed out too; an
admin's End or End all) or the provider ends its access; a time-out keeps them, so the provider goes on vouching
for the person's chat decisions through its re-checks. Sign out forgets them only for a cookie whose session still
has its record (`signing_out_account`): a copy of the cookie of a session ended on purpose forgets nothing.
Beside that the session holds when it was opened and last
used (seconds since the epoch, signed, so a client cannot move them) and a keyed stamp
of the password it was opened with, and the account's session epoch at sign-in. Past
the idle or the absolute limit from the settings, or once the account is deactivated,
deleted, given a new password, its epoch has moved (sign-out, a new password or role,
deactivation, an admin's "End all": `end_all_sessions`), its record is gone, or the rule every door
applies refuses the account (`steps.decider_refusal`: local sign-in turned to admins only for a local
non-admin, an identity provider no longer vouching for it), the loader answers None
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
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager, login_user, logout_user

from app.auth import oidc_client, steps
from app.auth.models import BrowserSession
from app.models import Account, utcnow

OPENED, SEEN, STAMP, NONCE, EPOCH = "opened_at", "seen_at", "stamp", "nonce", "epoch"
# Where Flask-Login keeps the signed-in account's id in the session.
USER_ID = "_user_id"
# The opaque id naming this session's record on the server (BrowserSession keeps only its digest).
SESSION_ID = "sid"
# Set by a sign-in through an identity provider, whose MFA stands for ours (app/auth/steps.py).
THROUGH_IDP = "through_idp"
# Between a right password and the second factor: who, the password stamp, when (no session yet).
HALF_SIGNED_IN = "half_signed_in"
SECOND_FACTOR_SECONDS = 300
# Sent with htmx's HX-Request by a page's own polling (static/live.js): not a person's activity.
BACKGROUND_HEADER = "X-Background-Refresh"

login_manager = LoginManager()
login_manager.login_view = "web_auth.sign_in"
# Freshness is never asked for, and on a permanent session "strong" acts as "basic".
login_manager.session_protection = None


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, opened without making the cookie's signer for a request that carries no
    session cookie (EPM's deliveries and API clients never do): what Flask opens then is the same new session.
    A request without a Cookie header has its (absent) cookies not even parsed."""

    def open_session(self, app, request):
        if app.secret_key and ("HTTP_COOKIE" not in request.environ
                               or not request.cookies.get(self.get_cookie_name(app))):
            return self.session_class()
        return super().open_session(app, request)


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
    app.session_interface = CookieSessionInterface()
    login_manager.init_app(app, add_context_processor=False)


@login_manager.user_loader
def load_account(account_id):
    """The account signed in to this session while it is within its limits; None ends the session."""
    account = Account.get_or_none(Account.id == int(account_id))
    if account is None or not account.active or session.get(EPOCH) != account.session_epoch or \
            not hmac.compare_digest(session.get(STAMP, ""), password_stamp(account)) or \
            not _within_limits() or not _record_kept(account):
        _end_this_session()
        return None
    # The rule every door applies (app/auth/steps.py): a refusal that no step on a page can lift ends the
    # session, the identity provider's re-check (when due) among them; a page's polling never waits for it.
    refusal = steps.decider_refusal(account, assured_by_idp=signed_in_through_idp(),
                                    may_ask_provider=not is_background_refresh())
    if refusal is not None and refusal.step is None:
        _end_this_session()
        return None
    return account


def _end_this_session():
    """This session is over: its record goes with it, so a copy of the cookie (whose own stamps may still be
    within the limits) opens nothing either, and the cookie forgets everything. The provider's tokens stay (a
    time-out is no sign-out): only sign-out, an admin or the provider ending access forgets them."""
    _forget_record(session.get(SESSION_ID))
    session.clear()


def _forget_record(session_id):
    """Delete the record the cookie's session id names (none for a cookie that names none)."""
    if isinstance(session_id, str):
        BrowserSession.delete().where(BrowserSession.key_digest == _key_digest(session_id)).execute()


def _within_limits():
    """True when this session is within the idle and absolute limits."""
    settings = current_app.extensions["settings"]
    now = int(time.time())
    opened, seen = session.get(OPENED), session.get(SEEN)
    if not isinstance(opened, int) or not isinstance(seen, int):
        return False
    return now - opened <= settings.session_max_hours * 3600 and now - seen <= settings.session_idle_minutes * 60


def _key_digest(session_id):
    return hashlib.sha256(session_id.encode()).hexdigest()


def _record_kept(account):
    """True while this session's record exists (an admin's "End" deletes it); notes this use in the cookie
    and the record, at most every 30 s and never for a page's own polling."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return False
    record = BrowserSession.get_or_none(BrowserSession.key_digest == _key_digest(session_id),
                                        BrowserSession.account == account.id)
    if record is None:
        return False
    now = int(time.time())
    if now - session[SEEN] >= 30 and not is_background_refresh():  # no need to rewrite the cookie on every click
        session[SEEN] = now
        BrowserSession.update(last_seen_at=utcnow()).where(BrowserSession.id == record.id).execute()
    return True


def is_background_refresh():
    """True for a page's own polling, which must not keep an idle session alive."""
    return request.headers.get("HX-Request") == "true" and request.headers.get(BACKGROUND_HEADER) == "1"


def password_stamp(account):
    """A short keyed digest of the account's stored password hash (never the hash itself)."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, account.password_hash.encode(), hashlib.sha256).hexdigest()[:32]


def signed_in_through_idp():
    """True when this session was opened by an identity provider's sign-in."""
    return bool(session.get(THROUGH_IDP))


def await_second_factor(account):
    """The password was right and a second factor is due: remember who, for a few minutes, signing nobody in."""
    session.clear()
    session[HALF_SIGNED_IN] = {"account": account.id, "stamp": password_stamp(account), "at": int(time.time())}


def awaiting_second_factor():
    """The account whose second factor this browser owes, or None (none owed, too late, or the password changed)."""
    pending = session.get(HALF_SIGNED_IN)
    if not isinstance(pending, dict) or int(time.time()) - pending.get("at", 0) > SECOND_FACTOR_SECONDS:
        return None
    account = Account.get_or_none(Account.id == pending.get("account"))
    if account is None or not account.active or not hmac.compare_digest(pending.get("stamp", ""),
                                                                        password_stamp(account)):
        return None
    return account


def start_session(account, through_idp=False):
    """Sign `account` in: a fresh session (new nonce, new CSRF token), nothing kept from before."""
    session.clear()
    session.permanent = True
    login_user(account)
    now = int(time.time())
    # Read again: a password just set in this request has moved the epoch the caller's copy holds.
    epoch = Account.select(Account.session_epoch).where(Account.id == account.id).scalar()
    session_id = secrets.token_urlsafe(32)
    _forget_expired_records()
    BrowserSession.create(key_digest=_key_digest(session_id), account=account.id, epoch=epoch,
                          source_address=(request.remote_addr or "")[:64],
                          user_agent=request.headers.get("User-Agent", "")[:255])
    session.update({NONCE: secrets.token_urlsafe(24), STAMP: password_stamp(account), OPENED: now, SEEN: now,
                    EPOCH: epoch, THROUGH_IDP: through_idp, SESSION_ID: session_id})


def _forget_expired_records():
    """Drop the records of sessions no cookie presented now can name (BrowserSession.named_since)."""
    oldest = BrowserSession.named_since(current_app.extensions["settings"])
    BrowserSession.delete().where(BrowserSession.created_at < oldest).execute()


def live_sessions():
    """The records of sessions that may still be in use, newest first: what the users page lists."""
    return list(BrowserSession.live(current_app.extensions["settings"]).order_by(BrowserSession.created_at.desc()))


def end_one_session(account, record_id):
    """End one session of `account` (its record goes, and with its last live one the provider's tokens); True when
    there was one."""
    ended = BrowserSession.delete().where(BrowserSession.id == record_id,
                                          BrowserSession.account == account.id).execute() == 1
    if ended:
        oidc_client.forget_unused_tokens(account.id)
    return ended


def is_this_session(record):
    """True when `record` is the session of the request being answered."""
    session_id = session.get(SESSION_ID)
    return isinstance(session_id, str) and hmac.compare_digest(record.key_digest, _key_digest(session_id))


def end_all_sessions(account):
    """End every browser session of `account`, on every device, copies of its cookie included; the provider's
    tokens go with them."""
    Account.change(account.id, session_epoch=Account.session_epoch + 1)
    BrowserSession.delete().where(BrowserSession.account == account.id).execute()
    oidc_client.forget_unused_tokens(account.id)


def forget_ended_sessions():
    """The `forget_ended_sessions` job: drop the records of sessions ended with their account's epoch or its
    deactivation, and of those that ended by themselves (idle, past the absolute limit) once no browser can present
    a cookie naming them (BrowserSession.still_named): until then a timed-out tab's Sign out must find its record.
    The users page lists none of them. The provider's tokens stay: a time-out is no sign-out."""
    named = BrowserSession.still_named(current_app.extensions["settings"]).select(BrowserSession.id)
    records = BrowserSession.delete().where(BrowserSession.id.not_in(named)).execute()
    return f"{records} ended session record(s) dropped"


def signing_out_account():
    """The account whose session this cookie names while that session still has its record (live, or only timed
    out: BrowserSession.still_named), whether or not it is within its limits; None for a cookie naming no session,
    or a copy of the cookie of a session ended on purpose (signed out, ended by an admin, End all), whose record is
    gone. Read it before `current_user`, whose loader ends a session it finds timed out and drops its record."""
    session_id = session.get(SESSION_ID)
    try:
        account_id = int(session.get(USER_ID))
    except (TypeError, ValueError):
        return None
    if not isinstance(session_id, str):
        return None
    record = (BrowserSession.still_named(current_app.extensions["settings"])
              .where(BrowserSession.key_digest == _key_digest(session_id), BrowserSession.account == account_id)
              .first())
    return record.account if record is not None else None


def end_session(account):
    """Sign out of this cookie's session, whose account is `account` (`signing_out_account()`, read before the
    loader ran; None for a cookie naming no session that still has its record): its record goes, so this cookie and
    every copy of it open nothing more. The account's sessions on other devices go on; "End all" on the users page
    or a new password ends those. The identity provider's tokens go unless another session of the account may still
    be in use, also when this one had already timed out on an open page; a cookie whose session was already ended
    on purpose forgets nothing (whoever holds a copy of it is not the session's owner signing out)."""
    # Whatever the loader said of this session, a copy of its cookie must end here.
    _forget_record(session.get(SESSION_ID))
    if account is not None:
        oidc_client.forget_unused_tokens(account.id)
    logout_user()
    session.clear()


def safe_next(target):
    """`target` when it is a path on this site, else None (no open redirects). A control character is
    refused: urlsplit drops tabs and line breaks, so "/<tab>/host" would read as another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target or \
            any(character < " " or character == "\x7f" for character in target):
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # an unbalanced "[" where a host would be
        return None
    return None if parts.scheme or parts.netloc else target


@login_manager.unauthorized_handler
def to_sign_in():
    """Anonymous page requests go to sign-in and come back afterwards; a form post comes back to nothing.

    A request htmx sent from a page (its polling) gets 401 with HX-Redirect, so the whole page goes to
    sign-in and comes back to itself rather than a fragment holding the sign-in form."""
    if request.headers.get("HX-Request") == "true":
        try:
            page = urlsplit(request.headers.get("HX-Current-URL", ""))
            back = page.path + (f"?{page.query}" if page.query else "")
        except ValueError:  # a header no page sends ("http://[broker/"): the page comes back to nothing
            back = None
        response = make_response("Signed out: sign in again.", 401)
        response.headers["HX-Redirect"] = url_for(login_manager.login_view, next=safe_next(back))
        return response
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for(login_manager.login_view, next=safe_next(back)))
