"""Signing in and out of the browser interface with a broker account."""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from app import contract
from app.auth.accounts import password_matches
from app.models import Account
from app.web.access import end_session, safe_next, signed_in_account, start_session

bp = Blueprint("web_auth", __name__)

MSG_SIGN_IN_FAILED = "Invalid user name or password"


def _may_sign_in(account, password):
    """True for an active approver or admin whose password matches.

    The password is checked first, for every name, so the answer takes as long
    for an unknown, inactive or `api` account as for a wrong password.
    """
    matches = password_matches(account, password)
    return matches and account.active and account.role in contract.APPROVER_ROLES


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    next_page = safe_next(request.values.get("next"))
    if request.method == "GET":
        if signed_in_account() is not None:
            return redirect(next_page or url_for("web_tickets.ticket_list"))
        return render_template("auth/sign_in.html", next_page=next_page, username="", error=None)

    username = request.form.get("username", "").strip()
    account = Account.by_username(username) if username else None
    if not _may_sign_in(account, request.form.get("password", "")):
        return render_template("auth/sign_in.html", next_page=next_page, username=username,
                               error=MSG_SIGN_IN_FAILED), 401
    start_session(account)
    return redirect(next_page or url_for("web_tickets.ticket_list"))


@bp.post("/sign-out")
def sign_out():
    end_session()
    flash("You are signed out.", "ok")
    return redirect(url_for("web_auth.sign_in"))
