"""Sign-in through the organisation's OpenID Connect provider, and the step-up before an Admin Access approval.

`/sign-in/oidc` sends the browser to the provider with a new state, nonce and PKCE verifier, kept
in the signed session beside when the trip started; `/sign-in/oidc/callback` takes the answer once
(a second use of the same state, a state this browser never got, one older than
`[oidc] sign_in_max_age`, or the provider's error each get a page saying so and a log line). A
step-up keeps the typed reason and duration in the same session entry, not in the URL, and records
the decision only when the provider has authenticated the same person again since it was asked and
its fresh ID token still puts them in an admin or approver group (their role follows it).
"""
import logging
import time

from flask import Blueprint, current_app, g, redirect, render_template, request, session, url_for

from app import contract
from app.auth import oidc, oidc_client, step_up
from app.auth.access import require_page_roles
from app.auth.sessions import safe_next, start_session
from app.audit import service as audit
from app.tickets.service import find_task
from app.web import decision_form, labels

bp = Blueprint("web_oidc", __name__)
log = logging.getLogger(__name__)

CALLBACK_PATH = "/sign-in/oidc/callback"
# The signed session's entries: trips to the provider under way (by state), and when the provider last
# authenticated the signed-in person (seconds since the epoch, from the ID token's auth_time).
PENDING, AUTH_TIME = "oidc_pending", "oidc_auth_time"
# Trips kept at once (several tabs); the oldest goes first.
MAX_PENDING = 5

PROBLEMS = {
    "replayed": ("This sign-in answer was already used, or was not meant for this browser",
                 "Each answer from the identity provider can be used once, by the browser that asked for it."),
    "expired": ("This sign-in took too long", "The answer from the identity provider came back after the time "
                                              "allowed for signing in."),
    "provider": ("The identity provider refused the sign-in", None),
    "token": ("The identity provider's answer could not be verified", "The broker could not redeem or verify the "
                                                                      "identity provider's answer."),
    "unreachable": ("The identity provider cannot be reached", "The broker could not read the identity "
                                                               "provider's configuration."),
}


def redirect_uri():
    """The redirect URI to register at the provider: `<public_url>/sign-in/oidc/callback`."""
    return current_app.extensions["settings"].link_base + CALLBACK_PATH


def post_logout_uri():
    """Where the provider sends the browser after RP-initiated logout: the sign-in page."""
    return current_app.extensions["settings"].link_base + url_for("web_auth.sign_in")


def _problem(kind, detail=None, status=400):
    """The page for a sign-in that did not complete, and the log line ops see for it."""
    title, explanation = PROBLEMS[kind]
    log.warning("identity provider sign-in refused (%s)%s", kind, f": {detail}" if detail else "")
    return render_template("auth/oidc_problem.html", title=title,
                           explanation=explanation or detail, retry=url_for("web_auth.sign_in")), status


def _send_to_provider(entry, **parameters):
    """Redirect to the provider's authorization endpoint, keeping `entry` under the new state."""
    try:
        request_ = oidc_client.authorization_request(redirect_uri(), **parameters)
    except oidc_client.PROVIDER_ERRORS as error:
        return _problem("unreachable", repr(error), 502)
    pending = dict(session.get(PENDING) or {})
    while len(pending) >= MAX_PENDING:
        pending.pop(min(pending, key=lambda state: pending[state]["started"]))
    pending[request_["state"]] = {**entry, "nonce": request_["nonce"], "code_verifier": request_["code_verifier"],
                                  "started": int(time.time())}
    session[PENDING] = pending
    return redirect(request_["url"])


@bp.get("/sign-in/oidc")
def start():
    if oidc_client.client() is None:
        return redirect(url_for("web_auth.sign_in"))
    return _send_to_provider({"next": safe_next(request.args.get("next"))})


def authenticated_at():
    """When the identity provider last authenticated this session's person (seconds since the epoch), or None."""
    return session.get(AUTH_TIME)


def fresh_enough():
    """Whether this session's provider authentication is recent enough to record an Admin Access approval."""
    return step_up.is_fresh(authenticated_at(), current_app.extensions["settings"].oidc_step_up_max_age)


def begin_step_up(task, slug, values):
    """Send the approver to the provider to authenticate again, keeping what they typed for the way back."""
    settings = current_app.extensions["settings"]
    return _send_to_provider({"step_up": {"number": task.number, "slug": slug, "values": values}},
                             prompt="login", max_age=settings.oidc_step_up_max_age)


@bp.get(CALLBACK_PATH)
def callback():
    pending = dict(session.get(PENDING) or {})
    entry = pending.pop(request.args.get("state") or "", None)
    session[PENDING] = pending
    if entry is None:
        return _problem("replayed", f"state unknown to this session, from {request.remote_addr}")
    settings = current_app.extensions["settings"]
    if time.time() - entry["started"] > settings.oidc_sign_in_max_age:
        return _problem("expired", f"{int(time.time() - entry['started'])} s after the trip started")
    answered_by = request.args.get("iss")
    if answered_by and answered_by != oidc_client.issuer():
        # RFC 9207: an answer naming another issuer is a mix-up attack, or a misconfiguration.
        return _problem("token", f"the answer names the issuer {answered_by[:200]!r}")
    if request.args.get("error"):
        error = request.args["error"][:100]
        description = request.args.get("error_description", "")[:300]
        page = _problem("provider", f"{error}: {description}" if description else error)
        return page if "step_up" not in entry else _step_up_failed(entry, PROBLEMS["provider"][0])
    try:
        claims, token = oidc_client.exchange_code(request.args.get("code", ""), redirect_uri(),
                                                  entry["code_verifier"], entry["nonce"])
    except oidc_client.PROVIDER_ERRORS as error:
        return _problem("token", repr(error))
    if "step_up" in entry:
        return _finish_step_up(entry, claims, token)
    try:
        account = oidc.sign_in_account(claims, settings)
    except oidc.NoAccess as refusal:
        log.warning("identity provider sign-in refused for %s: %s", claims.get("sub"), refusal.message)
        return render_template("auth/no_access.html", message=refusal.message,
                               label=oidc.button_label(settings)), refusal.status
    start_session(account, through_idp=True)
    session[AUTH_TIME] = claims.get("auth_time")
    oidc_client.store_tokens(account, token)
    return redirect(entry.get("next") or url_for("web_tickets.ticket_list"))


def _step_up_failed(entry, message):
    """The decision form again, with what was typed and why it was not recorded."""
    stash = entry["step_up"]
    task = find_task(stash["number"])
    view = decision_form.form_view(task, labels.DECISIONS_BY_SLUG[stash["slug"]], stash["values"], message=message)
    return render_template("tickets/decision.html", **view), 403


@require_page_roles(*contract.APPROVER_ROLES)
def _finish_step_up(entry, claims, token):
    account = g.account
    started = entry["started"]
    auth_time = claims.get("auth_time")
    if (claims.get("iss"), claims.get("sub")) != (account.idp_issuer, account.idp_subject):
        log.warning("step-up for %s answered by another identity (%s); nothing recorded", account.username,
                    claims.get("sub"))
        return _step_up_failed(entry, "The identity provider signed in someone else: the approval was not recorded")
    settings = current_app.extensions["settings"]
    if not oidc.apply_recheck(account, claims, settings):
        # The fresh ID token gives no role: the person left the groups. Every session of theirs ended with it.
        log.warning("step-up for %s: no longer in an admin or approver group; nothing recorded", account.username)
        return render_template("auth/no_access.html", message=oidc.MSG_NO_ACCESS,
                               label=oidc.button_label(settings)), 403
    if not isinstance(auth_time, (int, float)) or auth_time < started - oidc_client.CLOCK_SKEW_SECONDS:
        log.warning("step-up for %s came back without a new authentication (auth_time %s)", account.username,
                    auth_time)
        return _step_up_failed(entry, "The identity provider did not authenticate you again: the approval was "
                                      "not recorded. Try again")
    session[AUTH_TIME] = auth_time
    oidc_client.store_tokens(account, token)
    stash = entry["step_up"]
    task = find_task(stash["number"])
    audit.record(oidc.STEP_UP, account, "ticket", task.number, {"auth_time": auth_time})
    return decision_form.submit(task, labels.DECISIONS_BY_SLUG[stash["slug"]], stash["values"], account,
                                authenticated_at=auth_time)


def sign_out_redirect(account):
    """Where sign-out sends the browser: the provider's end-session endpoint for a provider account, else None."""
    return oidc_client.logout_url(account, post_logout_uri())


def page_context():
    """What the sign-in page shows of the provider: the button's text, or None when sign-in through it is off."""
    if oidc_client.client() is None:
        return None
    return f"Sign in with {oidc.button_label(current_app.extensions['settings'])}"
