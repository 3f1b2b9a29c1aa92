"""The JSON twins of the operations pages, in ServiceNow's `{"result": ...}` envelope (admins only).

Reads take Basic auth or a signed-in session; the one write (replay) takes Basic auth
only, as the rest of the write API does.
"""
from datetime import date, datetime

from flask import Blueprint, g, jsonify, request

from app import contract
from app.auth.basic import require_roles
from app.errors import BadRequest
from app.ops import dashboard as metrics
from app.ops import queries, replay as replays
from app.ops.documents import app_log_document, incoming_document, outbound_document
from app.ops.history import ticket_history
from app.tickets.api import find_task

bp = Blueprint("ops_api", __name__, url_prefix=contract.API_PREFIX)

admins = require_roles(contract.ROLE_ADMIN)


def _jsonable(value):
    if isinstance(value, datetime):
        return f"{value.isoformat()}Z"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


@bp.get("/ops/incoming_requests")
@admins
def incoming_requests():
    filters = queries.load_filters(queries.IncomingFilterSchema, request.args)
    return jsonify(result=[incoming_document(row) for row in queries.incoming_requests(filters)])


@bp.get("/ops/incoming_requests/<sys_id>")
@admins
def incoming_request(sys_id):
    return jsonify(result=incoming_document(replays.find_incoming_request(sys_id), with_body=True))


@bp.post("/ops/incoming_requests/<sys_id>/replay")
@require_roles(contract.ROLE_ADMIN, allow_session=False)
def replay_incoming_request(sys_id):
    body = request.get_json(silent=True)
    body = {} if body is None and not request.get_data() else body
    if not isinstance(body, dict) or not isinstance(body.get("dry_run", False), bool):
        raise BadRequest("Send a JSON object", 'optionally {"dry_run": true} to see what a replay would do')
    incoming = replays.find_incoming_request(sys_id)
    outcome = replays.replay(incoming, g.account, dry_run=body.get("dry_run", False),
                             source_address=request.remote_addr)
    return jsonify(result=outcome.as_dict())


@bp.get("/ops/outbound_calls")
@admins
def outbound_calls():
    filters = queries.load_filters(queries.OutboundFilterSchema, request.args)
    return jsonify(result=[outbound_document(call) for call in queries.outbound_calls(filters)])


@bp.get("/ops/outbound_calls/<sys_id>")
@admins
def outbound_call(sys_id):
    call = queries.find_outbound_call(sys_id)
    return jsonify(result=outbound_document(call, with_bodies=True))


@bp.get("/ops/app_log")
@admins
def app_log():
    filters = queries.load_filters(queries.AppLogFilterSchema, request.args)
    return jsonify(result=[app_log_document(entry) for entry in queries.app_log(filters)])


@bp.get("/ops/dashboard")
@admins
def dashboard():
    return jsonify(result=_jsonable(metrics.dashboard()))


@bp.get("/tickets/<number>/history")
@admins
def history(number):
    task = find_task(number)
    return jsonify(result={"ticket": task.number, "events": [event.as_dict() for event in ticket_history(task)]})
