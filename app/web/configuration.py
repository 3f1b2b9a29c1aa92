"""The admin configuration page: every integration setting, Test Connection and delivery retries.

The client secret is write-only: the page never renders it, and a blank secret
field keeps the stored one. "Retry all now" asks for confirmation first (app/web/confirmation.py).
"""
from flask import Blueprint, flash, redirect, render_template, request, url_for

from app import contract
from app.auth.access import require_page_roles
from app.configuration import FIELDS, pmc_host_warnings, update_configuration
from app.decisions import service as decisions
from app.epm.client import EpmClient
from app.epm.errors import EpmError
from app.errors import BadRequest
from app.models import Configuration, Decision
from app.logs.outbound import outbound_call_recorder
from app.web.confirmation import Confirmation, ask, is_confirmed
from app.web.forms import field_views, submitted_values

bp = Blueprint("web_configuration", __name__, url_prefix="/admin")

admins = require_page_roles(contract.ROLE_ADMIN)

CHECKBOX_FIELDS = {"auto_close", "smtp_starttls", "debug_logging"}
CHOICE_FIELDS = {"ticket_type": [(t.table, t.label) for t in contract.TICKET_TYPES.values()],
                 "token_auth_method": [(method, method) for method in contract.TOKEN_AUTH_METHODS]}


def _render(record, submitted=None, errors=None, message=None, status=200):
    host = submitted.get("pmc_host", record.pmc_host) if submitted else record.pmc_host
    return render_template(
        "admin/configuration.html",
        fields=field_views(FIELDS, {field.name: getattr(record, field.name) for field in FIELDS}, submitted, errors,
                           CHOICE_FIELDS, CHECKBOX_FIELDS),
        warnings=pmc_host_warnings(host) if not errors else [],
        message=message,
    ), status


@bp.get("/configuration")
@admins
def configuration():
    return _render(Configuration.default())


@bp.post("/configuration")
@admins
def save_configuration():
    raw = submitted_values(FIELDS, request.form, CHECKBOX_FIELDS)
    try:
        _, warnings = update_configuration(raw)
    except BadRequest as error:
        return _render(Configuration.default(), raw, error.extra.get("fields", {}), error.message, error.status)
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
        flash(f"Test Connection failed: {error}", "error")
    else:
        flash(result, "ok")
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
