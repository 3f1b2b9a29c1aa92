"""Signing in and out of the browser interface with a broker account: the password, then the second factor
for an account that has one (app/auth/two_factor.py). Wrong codes count with wrong passwords.

Sign out from a page opened before this session began (another tab, before a password change or a fresh
sign-in) carries the old session's CSRF token: it is refused like any such form, and answered with a page
asking "Sign out?" whose form carries this session's token, so the person can still sign out and a forged
sign-out still signs nobody out by itself."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app import contract
from app.audit import service as audit
from app.auth import steps, throttle, two_factor
from app.auth.accounts import password_matches
from app.auth.sessions import (await_second_factor, awaiting_second_factor, end_session, safe_next,
                               signing_out_account, start_session)
from app.errors import error_response
from app.models import Account, Configuration
from app.web import oidc
from app.web.confirmation import Confirmation, ask

bp = Blueprint("web_auth", __name__)

MSG_SIGN_IN_FAILED = "Invalid user name or password"
MSG_TOO_MANY = "Too many failed sign-ins; try again after {until}"
MSG_SIGNED_OUT = "You are signed out."
MSG_CODE_FAILED = "That code is not right, or was used already: type the 6 digits the app shows now, or a recovery code"
ROLE_REFUSAL = "the {!r} role may not sign in"
MSG_ROLE_REFUSED = "This account's role ({role}) is for {purpose}: it cannot sign in here. Use an approver's account."
MSG_LOCAL_ADMINS_ONLY = "Local sign-in is for admins only: use \"{label}\""
LOCAL_ADMINS_ONLY = "local sign-in is for admins only"
ROLE_PURPOSES = {contract.ROLE_API: "EPM's deliveries", contract.ROLE_READER: "reading the Table API"}


def _refusal(account, password):
    """Why this account may not sign in with this password, or None for an active approver or admin.

    The password is checked first, for every name, so the answer takes as long
    for an unknown, inactive or `api` account as for a wrong password. The reason
    goes to the audit log; the person signing in sees one message for all but a role
    that cannot use the browser, told only after its right password.
    """
    matches = password_matches(account, password)
    if account is None:
        return "unknown user name"
    if not matches:
        return "wrong password"
    if not account.active:
        return "account deactivated"
    if account.role not in contract.APPROVER_ROLES:
        return ROLE_REFUSAL.format(account.role)
    if (account.role != contract.ROLE_ADMIN and oidc.page_context()
            and Configuration.default().local_sign_in_admins_only):
        return LOCAL_ADMINS_ONLY
    return None


def _too_many(attempt):
    return MSG_TOO_MANY.format(until=throttle.until_text(attempt.refused.until))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    next_page = safe_next(request.values.get("next"))
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(next_page or url_for("web_tickets.ticket_list"))
        return render_template("auth/sign_in.html", next_page=next_page, username="", error=None,
                               provider_button=oidc.page_context())

    username = request.form.get("username", "").strip()
    attempt = throttle.Attempt(username, request.remote_addr)
    if attempt.refused:
        page = render_template("auth/sign_in.html", next_page=next_page, username=username,
                               error=_too_many(attempt), provider_button=oidc.page_context())
        return page, attempt.refused.status, attempt.retry_headers
    account = Account.by_username(username) if username else None
    refusal = _refusal(account, request.form.get("password", ""))
    if refusal is not None:
        attempt.failed()
        audit.record(audit.SIGN_IN_FAILED, username or "(blank)", "account", username, {"reason": refusal})
        error = MSG_SIGN_IN_FAILED
        if account is not None and refusal == ROLE_REFUSAL.format(account.role):
            error = MSG_ROLE_REFUSED.format(role=account.role, purpose=ROLE_PURPOSES[account.role])
        if refusal == LOCAL_ADMINS_ONLY:
            error = MSG_LOCAL_ADMINS_ONLY.format(label=oidc.page_context())
        return render_template("auth/sign_in.html", next_page=next_page, username=username, error=error,
                               provider_button=oidc.page_context()), 401
    if two_factor.is_enabled(account) and steps.needs_second_factor(account):
        await_second_factor(account)
        return redirect(url_for("web_auth.second_factor", next=next_page))
    audit.record(audit.SIGN_IN, account, "account", account.username)
    start_session(account)
    return redirect(next_page or url_for("web_tickets.ticket_list"))


def _code_page(account, next_page, error=None, status=200, headers=None):
    return render_template("auth/second_factor.html", next_page=next_page, error=error,
                           username=account.username), status, headers or {}


@bp.route("/sign-in/code", methods=["GET", "POST"])
def second_factor():
    """The second step of signing in: a code from the authenticator app, or a recovery code."""
    next_page = safe_next(request.values.get("next"))
    account = awaiting_second_factor()
    if account is None:
        flash("Sign in with your password first (the code must follow within 5 minutes).", "error")
        return redirect(url_for("web_auth.sign_in", next=next_page))
    if request.method == "GET":
        return _code_page(account, next_page)
    attempt = throttle.Attempt(account.username, request.remote_addr)
    if attempt.refused:
        return _code_page(account, next_page, _too_many(attempt), attempt.refused.status, attempt.retry_headers)
    used = two_factor.verify(account, request.form.get("code", ""))
    if used is None:
        attempt.failed()
        audit.record(audit.SIGN_IN_FAILED, account.username, "account", account.username,
                     {"reason": "wrong second-factor code"})
        return _code_page(account, next_page, MSG_CODE_FAILED, 401)
    audit.record(audit.SIGN_IN, account, "account", account.username, {"second_factor": used})
    start_session(account)
    if used == "recovery":
        flash(f"You signed in with a recovery code; {two_factor.recovery_codes_left(account)} are left. "
              "Each works once.", "warning")
    return redirect(next_page or url_for("web_tickets.ticket_list"))


@bp.post("/sign-out")
def sign_out():
    # Whose session the cookie names, read before `current_user`: its loader clears a session that timed out on a
    # page left open, and Sign out there must still forget the provider's tokens and sign out at the provider.
    account = signing_out_account()
    provider_logout = None
    if account is not None:
        detail = None if current_user.is_authenticated else {"session": "timed out"}
        audit.record(audit.SIGN_OUT, account, "account", account.username, detail)
        # Before end_session: the provider's sign-out takes the ID token kept with the tokens it forgets.
        provider_logout = oidc.sign_out_redirect(account)
    end_session(account)
    flash(MSG_SIGNED_OUT, "ok")
    return redirect(provider_logout or url_for("web_auth.sign_in"))


@bp.errorhandler(CSRFError)
def _form_from_another_session(error):
    """A sign-out whose token is not this session's: "Sign out?" with this session's token (still 400: the form
    sent did nothing), or, with no session left to end, the sign-in page. Other forms here: the CSRF refusal."""
    if request.endpoint != "web_auth.sign_out":
        return error_response(error.code, error.description)
    if not current_user.is_authenticated:
        flash(MSG_SIGNED_OUT, "ok")
        return redirect(url_for("web_auth.sign_in"))
    page, _status, headers = ask(Confirmation(
        question="Sign out?",
        consequences=(f"You are signed in as {current_user.username}. The Sign out you pressed came from a page "
                      "opened before this session began (before a sign-in or a password change), so it did "
                      "nothing.",
                      "Sign out here ends this session. Your sessions on other devices go on."),
        confirm_label="Sign out", cancel_url=url_for("web_tickets.home")))
    return page, 400, headers
