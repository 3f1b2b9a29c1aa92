"""The JSON twins of the operations and audit log pages (admins only); replay, the one write, takes Basic auth only."""
from flask import Blueprint, g, jsonify, request, url_for

from app import contract
from app.audit import service as audit
from app.auth.basic import require_roles
from app.errors import BadRequest
from app.fields import load_query
from app.ops import dashboard as metrics
from app.ops import queries, replay as replays
from app.ops.documents import (
    AppLogEntrySchema, DashboardSchema, HistorySchema, OutboundCallSchema, ReplayResultSchema,
)
from app.ops.history import ticket_history
from app.tickets.documents import IncomingRequestSchema
from app.tickets.service import find_task

bp = Blueprint("ops_api", __name__, url_prefix=contract.API_PREFIX)

admins = require_roles(contract.ROLE_ADMIN)


def _listed(documents, endpoint, **following):
    """The list answer; with `following` (the next page's start), a Link rel="next" header to it, as the ticket
    list gives: the query string as sent, where the page starts replaced."""
    response = jsonify(result=documents)
    if following:
        args = {key: value for key, value in request.args.items() if key not in ("offset", "before", "after")}
        response.headers["Link"] = f'<{url_for(endpoint, **args, **following)}>; rel="next"'
    return response


def _log_page(page, schema, endpoint):
    return _listed(schema.dump(page.rows), endpoint, **({"before": page.older} if page.older else {}))


@bp.get("/ops/incoming_requests")
@admins
def incoming_requests():
    filters = queries.load_filters(queries.IncomingFilterSchema, request.args)
    return _log_page(queries.incoming_requests(filters), IncomingRequestSchema(many=True, exclude=("headers", "body")),
                     "ops_api.incoming_requests")


@bp.get("/ops/incoming_requests/<sys_id>")
@admins
def incoming_request(sys_id):
    return jsonify(result=IncomingRequestSchema().dump(replays.find_incoming_request(sys_id)))


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
    return jsonify(result=ReplayResultSchema().dump(outcome))


@bp.get("/ops/outbound_calls")
@admins
def outbound_calls():
    filters = queries.load_filters(queries.OutboundFilterSchema, request.args)
    return _log_page(queries.outbound_calls(filters),
                     OutboundCallSchema(many=True, exclude=("request_body", "response_body")), "ops_api.outbound_calls")


@bp.get("/ops/outbound_calls/<sys_id>")
@admins
def outbound_call(sys_id):
    call = queries.find_outbound_call(sys_id)
    return jsonify(result=OutboundCallSchema().dump(call))


@bp.get("/ops/app_log")
@admins
def app_log():
    filters = queries.load_filters(queries.AppLogFilterSchema, request.args)
    return _log_page(queries.app_log(filters), AppLogEntrySchema(many=True), "ops_api.app_log")


@bp.get("/ops/dashboard")
@admins
def dashboard():
    return jsonify(result=DashboardSchema().dump(metrics.dashboard()))


@bp.get("/tickets/<number>/history")
@admins
def history(number):
    task = find_task(number)
    return jsonify(result=HistorySchema().dump({"ticket": task.number, "events": ticket_history(task)}))


@bp.get("/audit")
@admins
def audit_log():
    """Audit entries oldest first, in the order the chain runs and exports use; new entries do not shift pages."""
    filters = load_query(queries.AuditQuerySchema(), request.args, blank_is_missing=True)
    limit, offset, after = filters.pop("limit"), filters.pop("offset"), filters.pop("after", None)
    entries = list(audit.entries_between(after=after, **filters).limit(limit).offset(offset))
    return _listed([audit.entry_document(entry) for entry in entries], "ops_api.audit_log",
                   **({"after": entries[-1].id} if len(entries) == limit else {}))
