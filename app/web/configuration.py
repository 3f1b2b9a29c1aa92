"""The admin configuration page: every integration setting in groups, Test Connection and delivery retries.

The client secret is write-only: the page never renders it, and a blank secret
field keeps the stored one. The form carries the configuration's version: saved after the configuration
changed (another admin, `jitbroker config set` on any host), it is refused and shown again with what the
admin entered, each field that differs from the saved configuration marked with the saved value, so
nothing changed meanwhile is put back unseen. Refused rather than merged: the fields depend on each other
(a host and its secret, the statuses meaning approved and denied), and a merge could save a combination
nobody chose. Test Connection's result is shown beside its button: the
answer redirects to the button's section and the page shows the result there once.
"Retry all now" asks for confirmation first (app/web/confirmation.py).
"""
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for

from app import contract
from app.auth.access import require_page_roles
from app.configuration import (FIELDS, FIELDS_BY_NAME, ConfigurationChanged, masked_values, pmc_host_warnings,
                               update_configuration, versioned_configuration)
from app.decisions import service as decisions
from app.epm.client import EpmClient
from app.epm.errors import EpmError
from app.errors import BadRequest
from app.fields import clean_boolean
from app.models import Configuration, Decision
from app.logs.outbound import outbound_call_recorder
from app.web import oidc
from app.web.confirmation import Confirmation, ask, is_confirmed
from app.web.forms import field_views, submitted_values

bp = Blueprint("web_configuration", __name__, url_prefix="/admin")

admins = require_page_roles(contract.ROLE_ADMIN)

CHECKBOX_FIELDS = {field.name for field in FIELDS if field.clean is clean_boolean}
# The page's fieldsets, in order: (legend, field names). A field missing here still shows, in OTHER_GROUP.
GROUPS = (
    ("EPM connection", ("pmc_host", "tenant_id", "client_id", "client_secret", "token_path", "token_auth_method",
                        "token_scope", "application_decision_path", "admin_decision_path", "epm_internal")),
    ("Tickets", ("ticket_type", "active_states", "default_short_description", "default_assignment_group",
                 "default_category", "auto_close")),
    ("Notifications", ("smtp_host", "smtp_port", "smtp_username", "smtp_password", "smtp_starttls", "smtp_internal",
                       "mail_from", "notify_webhook_url", "sla_minutes")),
    ("Policies", ("admin_once_duration", "epm_approved_statuses", "epm_denied_statuses", "allow_self_approval")),
    ("Retention", ("retention_incoming_days", "retention_outbound_days", "retention_closed_ticket_days",
                   "retention_app_log_days", "debug_logging")),
    ("Sign-in", ("local_sign_in_admins_only",)),
)
OTHER_GROUP = "Other settings"
NOTIFICATIONS_GROUP = "Notifications"
CONNECTION_TEST_KEY = "connection_test"
# The hidden form field carrying the version of the configuration the page was rendered from.
VERSION_FIELD = "configuration_version"
CHANGED_MEANWHILE = ("The configuration was changed after this page was loaded (by another admin, or `jitbroker "
                     "config set`), so nothing was saved. What you entered is shown again")
CHOICE_FIELDS = {"ticket_type": [(t.table, t.label) for t in contract.TICKET_TYPES.values()],
                 "token_auth_method": [(method, method) for method in contract.TOKEN_AUTH_METHODS]}


def grouped(views):
    """The field views in GROUPS' fieldsets: [{legend, id, fields, errors}], empty groups left out."""
    by_name = {view["name"]: view for view in views}
    groups = [(legend, [by_name.pop(name) for name in names if name in by_name]) for legend, names in GROUPS]
    groups.append((OTHER_GROUP, list(by_name.values())))
    return [{"legend": legend, "id": "group-" + legend.lower().replace(" ", "-"), "fields": fields,
             "errors": sum(1 for view in fields if view["error"])}
            for legend, fields in groups if fields]


def _render(record, version, submitted=None, errors=None, message=None, status=200, review=False):
    """The page for `record`, its form carrying `version`: the record's own, or the one the admin's form was
    loaded at while its entries are shown again with an error."""
    host = submitted.get("pmc_host", record.pmc_host) if submitted else record.pmc_host
    views = field_views(FIELDS, {field.name: getattr(record, field.name) for field in FIELDS}, submitted, errors,
                        CHOICE_FIELDS, CHECKBOX_FIELDS)
    groups = grouped(views)
    return render_template(
        "admin/configuration.html",
        groups=groups,
        invalid=[view for group in groups for view in group["fields"] if view["error"]],
        warnings=pmc_host_warnings(host) if not errors else [],
        message=message,
        review=review,
        version_field=VERSION_FIELD,
        version=version,
        connection_test=session.pop(CONNECTION_TEST_KEY, None),
        notifications_group=NOTIFICATIONS_GROUP,
        identity_provider=_identity_provider(),
    ), status


def _identity_provider():
    """What the page says of sign-in through the identity provider: its issuer and the URIs to register there."""
    settings = current_app.extensions["settings"]
    if not settings.oidc_enabled:
        return None
    return {"issuer": settings.oidc_issuer, "client_id": settings.oidc_client_id,
            "redirect_uri": oidc.redirect_uri(), "post_logout_redirect_uri": oidc.post_logout_uri(),
            "roles_claim": settings.oidc_roles_claim}


def _submitted_version():
    """The version the form was loaded at; 0 (no version the database gives) when the form carries none."""
    text = request.form.get(VERSION_FIELD, "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 19 else 0


def _differences(record, submitted):
    """Field name -> a notice, for each field of the form that differs from the saved `record`."""
    saved = masked_values(record)
    notices = {}
    for name, value in submitted.items():
        field = FIELDS_BY_NAME[name]
        if field.secret:
            notices[name] = "Type it again to change it: a secret is never shown on the page"
            continue
        try:
            entered = field.clean(value)
        except ValueError:
            entered = value
        if entered != getattr(record, name):
            shown = ("on" if saved[name] else "off") if name in CHECKBOX_FIELDS else saved[name]
            notices[name] = f"The saved value is {shown if shown != '' else '(empty)'}"
    return notices


@bp.get("/configuration")
@admins
def configuration():
    record = versioned_configuration()
    return _render(record, record.configuration_version)


@bp.post("/configuration")
@admins
def save_configuration():
    raw = submitted_values(FIELDS, request.form, CHECKBOX_FIELDS)
    version = _submitted_version()
    try:
        _, warnings = update_configuration(raw, expected_version=version)
    except ConfigurationChanged as error:
        # Shown again at the current version: saving once more, after a look at the marked fields, is a choice.
        record = versioned_configuration()
        return _render(record, record.configuration_version, raw, _differences(record, raw), CHANGED_MEANWHILE,
                       error.status, review=True)
    except BadRequest as error:
        return _render(Configuration.default(), version, raw, error.extra.get("fields", {}), error.message,
                       error.status)
    flash("Configuration saved.", "ok")
    for warning in warnings:
        flash(warning, "warning")
    return redirect(url_for("web_configuration.configuration"))


@bp.post("/configuration/test")
@admins
def test_connection():
    try:
        configuration = Configuration.default()
        result = EpmClient.from_configuration(configuration, outbound_call_recorder(configuration)).test_connection()
    except (EpmError, ValueError) as error:
        session[CONNECTION_TEST_KEY] = {"ok": False, "message": f"Test Connection failed: {error}"}
    else:
        session[CONNECTION_TEST_KEY] = {"ok": True, "message": result}
    return redirect(url_for("web_configuration.configuration", _anchor="test-connection"))


@bp.post("/deliveries/retry")
@admins
def retry_deliveries():
    if not is_confirmed():
        waiting = Decision.select().where(Decision.status == contract.DELIVERY_PENDING).count()
        return ask(Confirmation(
            f"Send all {waiting} waiting decision(s) to EPM now?",
            (f"Each of the {waiting} decision(s) EPM has not acknowledged is sent again at once, instead of at its "
             "next scheduled attempt.",
             "A decision EPM accepts is final and cannot be changed afterwards; one it refuses is retried later "
             "as usual, or marked failed when EPM refuses it for good."),
            "Retry all now", url_for("web_configuration.configuration", _anchor="deliveries")))
    tried = decisions.retry_all()
    delivered = sum(1 for decision in tried if decision.status == contract.DELIVERY_DELIVERED)
    flash(f"Tried {len(tried)} waiting decision(s); {delivered} delivered to EPM.",
          "ok" if delivered == len(tried) else "warning")
    return redirect(url_for("web_configuration.configuration", _anchor="deliveries"))
