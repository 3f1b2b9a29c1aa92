"""The admin pages for ITSM connections: list, create, edit, delete and "Validate Settings".

Secrets are write-only: the form never renders them, and a blank secret field
keeps the stored one. Deleting a connection asks for confirmation first (app/web/confirmation.py).
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app import contract
from app.errors import BrokerError, NotFound
from app.itsm import CONNECTOR_TYPES
from app.itsm import connections as service
from app.itsm.models import ItsmConnection
from app.auth.access import require_page_roles
from app.web.confirmation import Confirmation, ask, is_confirmed
from app.web.forms import field_views, submitted_values

bp = Blueprint("itsm_admin", __name__, url_prefix="/admin/policies/itsm")

admins = require_page_roles(contract.ROLE_ADMIN)

CHECKBOXES = {"enabled"}


def _find(name):
    connection = service.find_connection(name)
    if connection is None:
        raise NotFound(f"No ITSM connection named {name!r}")
    return connection


@bp.get("")
@admins
def connections():
    rows = list(ItsmConnection.select().order_by(ItsmConnection.name))
    return render_template("policies/itsm.html", rows=rows, kinds=CONNECTOR_TYPES)


def _field_views(connection, submitted, errors):
    stored = service.masked(connection) if connection is not None else {"enabled": True, "timeout_seconds": 10}
    kinds = [(kind, connector.label) for kind, connector in CONNECTOR_TYPES.items()]
    return field_views(service.FIELDS, stored, submitted, errors, {"kind": kinds}, CHECKBOXES, {"options"})


def _render_form(connection, submitted=None, errors=None, message=None, status=200):
    return render_template("policies/itsm_form.html", connection=connection,
                           fields=_field_views(connection, submitted, errors), message=message,
                           kinds=CONNECTOR_TYPES), status


@bp.route("/new", methods=["GET", "POST"], endpoint="new_connection")
@bp.route("/<name>", methods=["GET", "POST"])
@admins
def edit_connection(name=None):
    connection = _find(name) if name is not None else None
    if request.method == "GET":
        return _render_form(connection)
    raw = submitted_values(service.FIELDS, request.form, CHECKBOXES)
    try:
        saved = (service.update_connection(connection, raw, g.account) if connection is not None
                 else service.create_connection(raw, g.account))
    except BrokerError as error:
        return _render_form(connection, raw, error.extra.get("fields", {}), error.message, error.status)
    flash(f"ITSM connection {saved.name!r} saved." if connection is not None else
          f"ITSM connection {saved.name!r} added. Use Validate Settings to check it.", "ok")
    return redirect(url_for("itsm_admin.edit_connection", name=saved.name))


@bp.post("/<name>/validate")
@admins
def validate(name):
    ok, message = service.validate_connection(_find(name))
    flash(message, "ok" if ok else "error")
    return redirect(url_for("itsm_admin.edit_connection", name=name, _anchor="validate"))


@bp.post("/<name>/delete")
@admins
def delete(name):
    connection = _find(name)
    if not is_confirmed():
        kind = CONNECTOR_TYPES[connection.kind].label if connection.kind in CONNECTOR_TYPES else connection.kind
        return ask(Confirmation(
            f"Delete ITSM connection {name!r}?",
            (f"Its address and stored credentials are erased; ticket references are no longer looked up in "
             f"{kind} at {connection.base_url}.",
             "A rule whose ticket source is this connection keeps it from being deleted until the rule changes.",
             "This cannot be undone."),
            f"Delete connection {name}", url_for("itsm_admin.edit_connection", name=name)))
    try:
        service.delete_connection(connection, g.account)
    except BrokerError as error:
        flash(error.described(), "error")
        return redirect(url_for("itsm_admin.edit_connection", name=name))
    flash(f"ITSM connection {name!r} deleted.", "ok")
    return redirect(url_for("itsm_admin.connections"))
