"""The admin users page: create accounts, set roles, reset passwords, deactivate and reactivate,
set where an approver's notifications go (e-mail address, assignment groups), end an
account's browser sessions everywhere, and reset a person's second factor.

Deactivating an account, resetting a password and ending a sign-in lock-out ask for confirmation
first (app/web/confirmation.py).
A generated password is shown once, in the answer to the request that made it; it
is never stored in the session or put in a URL. An admin cannot change their own
role or deactivate themselves, so the last admin cannot lock everyone out.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app import contract
from app.audit import service as audit
from app.auth.access import require_page_roles
from app.auth import throttle, two_factor
from app.auth.accounts import create_account, generate_password, set_password
from app.auth.sessions import end_all_sessions, end_one_session, is_this_session, live_sessions, start_session
from app.db import write_transaction
from app.errors import BadRequest, BrokerError, NotFound
from app.models import Account
from app.notify.settings import set_notification_settings
from app.web.confirmation import Confirmation, ask, is_confirmed

bp = Blueprint("web_users", __name__, url_prefix="/admin")

# The audit actions of an admin's "End all" and "End" (beside app/audit/service.py's user_* actions).
USER_SESSIONS_END = "user_sessions_end"
USER_SESSION_END = "user_session_end"

admins = require_page_roles(contract.ROLE_ADMIN)

AUDIT_UNLOCK = "user_unlock"
USER_MFA_RESET = "user_mfa_reset"


def _find_account(account_id):
    account = Account.get_or_none(Account.id == account_id)
    if account is None:
        raise NotFound("No such account")
    return account


def _refuse_self(account, what):
    if account.id == g.account.id:
        raise BadRequest(f"You cannot {what} your own account; ask another admin")


def set_role(account, role):
    """Give `account` another role (not the signed-in admin's own)."""
    if role not in contract.ROLES:
        raise BadRequest(f"Unknown role {role!r}; choose one of {', '.join(contract.ROLES)}")
    _refuse_self(account, "change the role of")
    with write_transaction():
        Account.change(account.id, role=role)
        end_all_sessions(account)
        audit.record(audit.USER_ROLE_CHANGE, g.account, "account", account.username,
                     {"old": account.role, "new": role})


def set_active(account, active):
    """Deactivate or reactivate `account`; a deactivated account can neither sign in nor call the API."""
    if not active:
        _refuse_self(account, "deactivate")
    with write_transaction():
        Account.change(account.id, active=active)
        end_all_sessions(account)
        audit.record(audit.USER_REACTIVATE if active else audit.USER_DEACTIVATE, g.account, "account",
                     account.username)


def _render(new_password=None, error=None, status=200, form=None):
    accounts = list(Account.select().order_by(Account.username))
    locked = {account.username: throttle.until_text(until) for account in accounts
              if (until := throttle.locked_until(account.username))}
    sessions = [{"id": record.id, "username": record.account.username, "account_id": record.account.id,
                 "created_at": record.created_at, "last_seen_at": record.last_seen_at,
                 "source_address": record.source_address, "user_agent": record.user_agent,
                 "is_this": is_this_session(record)} for record in live_sessions()]
    sessions.sort(key=lambda row: row["username"])  # stable: newest first within each account
    response = render_template("admin/users.html", accounts=accounts, locked=locked, roles=contract.ROLES,
                               sessions=sessions,
                               approver_roles=contract.APPROVER_ROLES,
                               role_choices=[(role, role) for role in contract.ROLES],
                               new_password=new_password, error=error, form=form or {})
    # The page may carry a password shown once: keep it out of every cache.
    return response, status, {"Cache-Control": "no-store"}


@bp.get("/users")
@admins
def users():
    return _render()


@bp.post("/users")
@admins
def create_user():
    username = request.form.get("username", "")
    role = request.form.get("role", "")
    try:
        with write_transaction():
            account, password = create_account(username, role)
            audit.record(audit.USER_CREATE, g.account, "account", account.username, {"role": account.role})
    except BrokerError as error:
        return _render(error=error.message, status=error.status, form={"username": username, "role": role})
    return _render(new_password={"username": account.username, "password": password, "created": True},
                   status=201)


@bp.post("/users/<int:account_id>/role")
@admins
def change_role(account_id):
    account = _find_account(account_id)
    try:
        set_role(account, request.form.get("role", ""))
    except BrokerError as error:
        return _render(error=error.message, status=error.status)
    flash(f"{account.username} is now {request.form['role']}.", "ok")
    return redirect(url_for("web_users.users"))


def _confirm_reset(account):
    if account.id == g.account.id:
        who = ["Your current password stops working at once; this session stays signed in."]
    elif account.role == contract.ROLE_API:
        who = [f"{account.username}'s current password stops working at once: EPM's webhook deliveries are refused "
               "until EPM is given the new one.",
               "To rotate EPM's credentials without refusing a delivery, use `jitbroker users set-password "
               f"{account.username} --keep-previous-hours N` instead."]
    else:
        who = [f"{account.username}'s current password stops working at once, and their open sessions end."]
    return Confirmation(f"Reset the password of {account.username}?",
                        (*who, "The new password is shown only once, on the next page."),
                        f"Reset password of {account.username}", url_for("web_users.users"))


def _confirm_deactivate(account):
    if account.role == contract.ROLE_API:
        what = "EPM can no longer deliver requests with this account: its webhook deliveries are refused."
    else:
        what = "They can no longer sign in, decide requests or call the API; their open sessions end at once."
    return Confirmation(f"Deactivate {account.username}?",
                        (what, "You can reactivate the account later; nothing else about it changes."),
                        f"Deactivate {account.username}", url_for("web_users.users"), {"active": "false"})


@bp.post("/users/<int:account_id>/password")
@admins
def reset_password(account_id):
    account = _find_account(account_id)
    if not is_confirmed():
        return ask(_confirm_reset(account))
    password = generate_password()
    with write_transaction():
        # Another person must choose their own at the next sign-in; an admin resetting their own has just chosen it.
        set_password(account, password, set_by_admin=account.id != g.account.id)
        audit.record(audit.USER_PASSWORD_RESET, g.account, "account", account.username)
    if account.id == g.account.id:
        # A new password ends the sessions opened with the old one; keep this one.
        start_session(account)
    return _render(new_password={"username": account.username, "password": password, "created": False})


def _confirm_end_sessions(account):
    if account.id == g.account.id:
        what = "Every session of your account ends, this one included: you sign in again."
    else:
        what = f"{account.username} is signed out everywhere at once and must sign in again."
    return Confirmation(f"End every session of {account.username}?",
                        (what, "Their password, role and account stay as they are; HTTP Basic is not affected."),
                        f"End sessions of {account.username}", url_for("web_users.users"))


@bp.post("/users/<int:account_id>/sessions/end")
@admins
def end_sessions(account_id):
    """End every browser session of an account (a copied or forgotten cookie included), audited."""
    account = _find_account(account_id)
    if not is_confirmed():
        return ask(_confirm_end_sessions(account))
    with write_transaction():
        end_all_sessions(account)
        audit.record(USER_SESSIONS_END, g.account, "account", account.username)
    flash(f"Every session of {account.username} has ended.", "ok")
    return redirect(url_for("web_users.users"))


@bp.post("/users/<int:account_id>/active")
@admins
def change_active(account_id):
    account = _find_account(account_id)
    active = request.form.get("active") == "true"
    if not active and not is_confirmed():
        try:
            _refuse_self(account, "deactivate")
        except BrokerError as error:
            return _render(error=error.message, status=error.status)
        return ask(_confirm_deactivate(account))
    try:
        set_active(account, active)
    except BrokerError as error:
        return _render(error=error.message, status=error.status)
    flash(f"{account.username} is {'active again' if active else 'deactivated'}.", "ok")
    return redirect(url_for("web_users.users"))


@bp.post("/users/<int:account_id>/notifications")
@admins
def change_notifications(account_id):
    account = _find_account(account_id)
    try:
        changes = set_notification_settings(account, g.account, email=request.form.get("email", ""),
                                            groups=request.form.get("groups", ""))
    except BrokerError as error:
        return _render(error=error.message, status=error.status)
    flash(f"{account.username}: e-mail and groups saved." if changes else f"{account.username}: nothing changed.",
          "ok")
    return redirect(url_for("web_users.users"))


@bp.post("/users/<int:account_id>/unlock")
@admins
def unlock(account_id):
    """End the lock-out failed sign-ins put on an account (app/auth/throttle.py), before it runs out."""
    account = _find_account(account_id)
    if not is_confirmed():
        return ask(Confirmation(
            f"Unlock {account.username}?",
            ("Their failed sign-ins are forgotten: the browser form and HTTP Basic accept their password again "
             "at once.", "Do this only once you know the failures were theirs, not someone guessing."),
            f"Unlock {account.username}", url_for("web_users.users")))
    with write_transaction():
        forgotten = throttle.unlock(account.username)
        audit.record(AUDIT_UNLOCK, g.account, "account", account.username, {"failures_forgotten": forgotten})
    flash(f"{account.username} is unlocked.", "ok")
    return redirect(url_for("web_users.users"))


@bp.post("/users/<int:account_id>/two-factor/reset")
@admins
def reset_two_factor(account_id):
    """Turn off a person's second factor (a lost phone), audited; their sessions end, and they enrol again."""
    account = _find_account(account_id)
    try:
        _refuse_self(account, "reset two-factor sign-in of")
    except BrokerError as error:  # yours needs a current code, on your Account page
        return _render(error=error.message, status=error.status)
    if not is_confirmed():
        return ask(Confirmation(
            f"Reset two-factor sign-in of {account.username}?",
            ("Their authenticator app and recovery codes stop working, and their open sessions end: they sign in "
             "with their password alone and can enrol a new app.",
             "Do this only once you know who is asking: the password becomes the only factor until then."),
            f"Reset two-factor of {account.username}", url_for("web_users.users")))
    with write_transaction():
        two_factor.turn_off(account)
        end_all_sessions(account)
        audit.record(USER_MFA_RESET, g.account, "account", account.username)
    flash(f"Two-factor sign-in of {account.username} is reset.", "ok")
    return redirect(url_for("web_users.users"))


@bp.post("/users/<int:account_id>/sessions/<int:session_id>/end")
@admins
def end_one(account_id, session_id):
    """End one browser session of an account (a device left signed in), audited; its others go on."""
    account = _find_account(account_id)
    with write_transaction():
        if not end_one_session(account, session_id):
            raise NotFound("No such session: it has ended already")
        audit.record(USER_SESSION_END, g.account, "account", account.username, {"session": session_id})
    flash(f"One session of {account.username} has ended.", "ok")
    return redirect(url_for("web_users.users"))
