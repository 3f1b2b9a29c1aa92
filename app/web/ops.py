"""The operations pages for admins: dashboard, incoming requests (with replay), calls to EPM, the log.

A replay is confirmed on its dry run: the page shows what it would change, with Replay now and Cancel;
a replay posted without that confirmation gets the dry run, not the replay.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app import contract
from app.ops import dashboard as metrics
from app.ops import queries, replay as replays
from app.ops.documents import pretty_body
from app.auth.access import require_page_roles
from app.web.confirmation import CONFIRM_FIELD, CONFIRM_VALUE, is_confirmed

bp = Blueprint("ops", __name__, url_prefix="/admin")

admins = require_page_roles(contract.ROLE_ADMIN)

APPLY = "apply"


def _list_page(template, page, filters, **extra):
    return render_template(template, rows=page.rows, filters=filters, filter_args=queries.filter_args(filters),
                           newer=page.newer, older=page.older, **extra)


@bp.get("/dashboard")
@admins
def dashboard():
    return render_template("ops/dashboard.html", board=metrics.dashboard(), kind_labels=contract.KIND_LABELS)


@bp.get("/incoming")
@admins
def incoming_list():
    filters = queries.load_filters(queries.IncomingFilterSchema, request.args)
    return _list_page("ops/incoming_list.html", queries.incoming_requests(filters), filters,
                      status_choices=[(status, status) for status in contract.INCOMING_STATUSES],
                      event_type_choices=[(name, name) for name in contract.EVENT_TYPES])


def _incoming_page(incoming, preview=None, status=200):
    return render_template("ops/incoming_detail.html", incoming=incoming, body=pretty_body(incoming.body_text),
                           preview=preview, confirm_field=CONFIRM_FIELD, confirm_value=CONFIRM_VALUE), status


@bp.get("/incoming/<sys_id>")
@admins
def incoming_detail(sys_id):
    return _incoming_page(replays.find_incoming_request(sys_id))


@bp.post("/incoming/<sys_id>/replay")
@admins
def incoming_replay(sys_id):
    incoming = replays.find_incoming_request(sys_id)
    if request.form.get("mode") != APPLY or not is_confirmed():
        return _incoming_page(incoming, preview=replays.replay(incoming, g.account, dry_run=True))
    outcome = replays.replay(incoming, g.account, source_address=request.remote_addr)
    flash(f"Replay: {outcome.message}.", "error" if outcome.failed else "ok" if outcome.changed else "warning")
    return redirect(url_for("ops.incoming_detail", sys_id=incoming.sys_id))


@bp.get("/outbound")
@admins
def outbound_list():
    filters = queries.load_filters(queries.OutboundFilterSchema, request.args)
    return _list_page("ops/outbound_list.html", queries.outbound_calls(filters), filters,
                      what_choices=[(what, what) for what in queries.PURPOSES],
                      outcome_choices=[("ok", "Succeeded"), ("failed", "Failed")])


@bp.get("/outbound/<sys_id>")
@admins
def outbound_detail(sys_id):
    call = queries.find_outbound_call(sys_id)
    return render_template("ops/outbound_detail.html", call=call, request_body=pretty_body(call.request_body),
                           response_body=pretty_body(call.response_body))


@bp.get("/logs")
@admins
def app_log():
    filters = queries.load_filters(queries.AppLogFilterSchema, request.args)
    return _list_page("ops/app_log.html", queries.app_log(filters), filters,
                      level_choices=[(level, f"{level} and above") for level in queries.LOG_LEVELS])
