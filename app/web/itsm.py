"""The admin pages for ITSM connections: list, create, edit, delete and "Validate Settings".

Secrets are write-only: the form never renders them, and a blank secret field
keeps the stored one.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app import contract
from app.errors import BrokerError, NotFound
from app.itsm import CONNECTOR_TYPES
from app.itsm import connections as service
from app.itsm.models import ItsmConnection
from app.auth.access import require_page_roles

bp = Blueprint("itsm_admin", __name__, url_prefix="/admin/policies/itsm")

admins = require_page_roles(contract.ROLE_ADMIN)


def _find(name):
    connection = service.find_connection(name)
    if connection is None:
        raise NotFound(f"No ITSM connection named {name!r}")
    return connection


def _widget(field):
    if field.secret:
        return "secret"
    if field.name == "enabled":
        return "checkbox"
    if field.name == "kind":
        return "select"
    if field.name == "options":
        return "textarea"
    return "text"


def field_views(connection=None, submitted=None, errors=None):
    errors = errors or {}
    shown = service.masked(connection) if connection is not None else {}
    views = []
    for field in service.FIELDS:
        if submitted is not None and field.name in submitted and not field.secret:
            value = submitted[field.name]
        elif connection is not None:
            value = shown[field.name]
        else:
            value = {"enabled": True, "timeout_seconds": 10}.get(field.name, "")
        if field.name == "enabled" and isinstance(value, str):
            value = value == "true"
        views.append({
            "name": field.name, "label": field.label, "widget": _widget(field), "help": field.help,
            "value": "" if field.secret else value, "is_set": bool(connection and getattr(connection, field.name)),
            "choices": [(kind, connector.label) for kind, connector in CONNECTOR_TYPES.items()],
            "error": errors.get(field.name),
        })
    return views


def submitted_values(form):
    raw = {}
    for field in service.FIELDS:
        if field.name == "enabled":
            raw[field.name] = "true" if form.get(field.name) else "false"
        elif field.secret:
            if form.get(field.name):
                raw[field.name] = form[field.name]
        else:
            raw[field.name] = form.get(field.name, "")
    return raw


@bp.get("")
@admins
def connections():
    rows = list(ItsmConnection.select().order_by(ItsmConnection.name))
    return render_template("policies/itsm.html", rows=rows, kinds=CONNECTOR_TYPES)


def _render_form(connection, submitted=None, errors=None, message=None, status=200):
    return render_template("policies/itsm_form.html", connection=connection,
                           fields=field_views(connection, submitted, errors), message=message,
                           kinds=CONNECTOR_TYPES), status


@bp.route("/new", methods=["GET", "POST"])
@admins
def new_connection():
    if request.method == "GET":
        return _render_form(None)
    raw = submitted_values(request.form)
    try:
        connection = service.create_connection(raw, g.account)
    except BrokerError as error:
        return _render_form(None, raw, error.extra.get("fields", {}), error.message, error.status)
    flash(f"ITSM connection {connection.name!r} added. Use Validate Settings to check it.", "ok")
    return redirect(url_for("itsm_admin.edit_connection", name=connection.name))


@bp.route("/<name>", methods=["GET", "POST"])
@admins
def edit_connection(name):
    connection = _find(name)
    if request.method == "GET":
        return _render_form(connection)
    raw = submitted_values(request.form)
    try:
        connection = service.update_connection(connection, raw, g.account)
    except BrokerError as error:
        return _render_form(connection, raw, error.extra.get("fields", {}), error.message, error.status)
    flash(f"ITSM connection {connection.name!r} saved.", "ok")
    return redirect(url_for("itsm_admin.edit_connection", name=connection.name))


@bp.post("/<name>/validate")
@admins
def validate(name):
    ok, message = service.validate_connection(_find(name))
    flash(message, "ok" if ok else "error")
    return redirect(url_for("itsm_admin.edit_connection", name=name, _anchor="validate"))


@bp.post("/<name>/delete")
@admins
def delete(name):
    try:
        service.delete_connection(_find(name), g.account)
    except BrokerError as error:
        flash(f"{error.message}: {error.detail}" if error.detail else error.message, "error")
        return redirect(url_for("itsm_admin.edit_connection", name=name))
    flash(f"ITSM connection {name!r} deleted.", "ok")
    return redirect(url_for("itsm_admin.connections"))
