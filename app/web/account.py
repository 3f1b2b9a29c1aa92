"""A person's own account: changing their password (and, app/web/two_factor.py, their second factor).

Changing the password asks for the current one, checks the new one by the rules an admin-set
password meets, ends the account's other sessions and keeps this one signed in. A wrong
current password counts as a failed sign-in (app/auth/throttle.py), so a session left open
on a shared machine is no way around the lock-out.
"""
from functools import wraps

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from app import contract
from app.audit import service as audit
from app.auth import throttle
from app.auth.access import require_page_roles
from app.auth.accounts import MIN_PASSWORD_LENGTH, change_own_password
from app.auth.oidc import button_label
from app.auth.sessions import start_session
from app.db import write_transaction
from app.errors import BrokerError, Unauthorized

bp = Blueprint("web_account", __name__, url_prefix="/account")

USER_PASSWORD_CHANGE = "user_password_change"

# The person's own account pages (here and app/web/two_factor.py): open while the account still has to change its
# password or enrol a second factor (the access check still sends an admin-set password here first).
people = require_page_roles(*contract.APPROVER_ROLES, before_outstanding_steps=True)


def provider_page(account, status=200):
    """The answer to a password or second-factor page for an account the identity provider signs in."""
    settings = current_app.extensions["settings"]
    label = button_label(settings) if settings.oidc_enabled else "your identity provider"
    return render_template("account/provider_managed.html", label=label), status


def local_accounts_only(view):
    """Below the role check: an account the identity provider signs in has no password or second factor here."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        if g.account.signs_in_with_provider:
            return provider_page(g.account, 200 if request.method == "GET" else 409)
        return view(*args, **kwargs)
    return wrapper


def _render(error=None, status=200):
    return render_template("account/password.html", error=error, min_length=MIN_PASSWORD_LENGTH,
                           must_change=g.account.must_change_password), status


@bp.get("/password")
@people
@local_accounts_only
def password():
    return _render()


@bp.post("/password")
@people
@local_accounts_only
def change_password():
    account = g.account
    attempt = throttle.Attempt(account.username, request.remote_addr)
    if attempt.refused:
        return _render(attempt.refused.message, attempt.refused.status)
    new, repeated = request.form.get("new_password", ""), request.form.get("new_password_again", "")
    if new != repeated:
        return _render("The two new passwords differ; type the same one twice", 400)
    try:
        with write_transaction():
            change_own_password(account, request.form.get("current_password", ""), new)
            audit.record(USER_PASSWORD_CHANGE, account, "account", account.username)
    except Unauthorized as error:
        attempt.failed()
        return _render(error.message, 400)
    except BrokerError as error:
        return _render(error.message, error.status)
    # The new password ended every session opened with the old one, this one too: open a fresh one here.
    start_session(account)
    flash("Your password is changed. Your other sessions have ended.", "ok")
    return redirect(url_for("web_tickets.ticket_list"))
