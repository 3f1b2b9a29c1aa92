"""A person's second factor: enrol an authenticator app (TOTP), see how many recovery codes are left, turn it off.

Enrolment shows the secret as text, as an otpauth:// URI and as a QR image made on the
broker; it is on once the person types their current password and a code from the app, and
the ten recovery codes are shown then, once. A wrong password counts as a failed sign-in, as
on the password page: a session left open is no way to bind someone else's app. Turning it
on ends the account's other sessions, opened with the password alone, as a new password does;
this one is opened again. Turning it off (to move to a new phone: off, then enrol again)
needs a current code or a recovery code; a wrong one counts as a failed sign-in. An admin
can reset it for a person who lost their phone (app/web/users.py).
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app.audit import service as audit
from app.auth import steps, throttle, two_factor
from app.auth.sessions import end_all_sessions, start_session
from app.db import write_transaction
from app.errors import BrokerError, Unauthorized
from app.web.account import local_accounts_only, people

bp = Blueprint("web_two_factor", __name__, url_prefix="/account")

USER_MFA_ENABLE = "user_mfa_enable"
USER_MFA_DISABLE = "user_mfa_disable"


def _render(error=None, status=200, recovery_codes=None):
    account = g.account
    if steps.owes_password_change(account):
        return redirect(url_for("web_account.password"))
    page = {"account": account, "error": error, "recovery_codes": recovery_codes,
            "enabled": two_factor.is_enabled(account), "required": steps.needs_second_factor(account)}
    if page["enabled"]:
        page["codes_left"] = two_factor.recovery_codes_left(account)
    else:
        secret = two_factor.pending_secret(account)
        uri = two_factor.provisioning_uri(account, secret)
        page.update(secret=secret, uri=uri, qr_image=two_factor.qr_image_data_uri(uri))
    return render_template("account/two_factor.html", **page), status


@bp.get("/two-factor")
@people
@local_accounts_only
def two_factor_page():
    return _render()


@bp.post("/two-factor")
@people
@local_accounts_only
def enable():
    account = g.account
    attempt = throttle.Attempt(account.username, request.remote_addr)
    if attempt.refused:
        return _render(attempt.refused.message, attempt.refused.status)
    try:
        with write_transaction():
            codes = two_factor.enable(account, request.form.get("current_password", ""),
                                      request.form.get("code", ""))
            # Sessions opened with the password alone end (this one too): each signs in again with a code.
            end_all_sessions(account)
            audit.record(USER_MFA_ENABLE, account, "account", account.username)
    except Unauthorized as error:
        attempt.failed()
        return _render(error.message, 400)
    except BrokerError as error:
        return _render(error.message, error.status)
    start_session(account)
    flash("Your other sessions have ended: they sign in again with a code from the app.", "ok")
    return _render(recovery_codes=codes)


@bp.post("/two-factor/off")
@people
@local_accounts_only
def disable():
    account = g.account
    attempt = throttle.Attempt(account.username, request.remote_addr)
    if attempt.refused:
        return _render(attempt.refused.message, attempt.refused.status)
    if two_factor.verify(account, request.form.get("code", "")) is None:
        attempt.failed()
        return _render("That code is not right, or was used already", 400)
    two_factor.turn_off(account)
    audit.record(USER_MFA_DISABLE, account, "account", account.username)
    flash("Two-factor sign-in is off. To use a new phone, enrol it below.", "ok")
    return redirect(url_for("web_two_factor.two_factor_page"))
