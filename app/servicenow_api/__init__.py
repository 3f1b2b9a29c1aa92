"""A read-only subset of ServiceNow's Table API over the broker's own tickets, Basic auth only.

A PAM product configured for ServiceNow can check a JIT ticket number against the broker as it would against
an instance; where the broker differs (`opened_by` is a name, not a reference) is in docs."""
from flask import Blueprint, jsonify, request

from app import contract
from app.auth.basic import require_roles
from app.errors import BadRequest, NotFound
from app.fields import MAX_OFFSET
from app.servicenow_api.query import QueryError, parse_query
from app.servicenow_api.records import DOT_WALKED, FIELDS, QUERYABLE, find_records, record_document

bp = Blueprint("servicenow_table_api", __name__, url_prefix="/api/now/table")

TABLE_API_ROLES = (contract.ROLE_USER, contract.ROLE_ADMIN, contract.ROLE_READER)
DEFAULT_LIMIT = 10000
MAX_LIMIT = 10000
DISPLAY_MODES = ("false", "true", "all")


def _table(name):
    if name not in contract.TICKET_TYPES:
        raise BadRequest(f"Invalid table {name}", f"this API serves {', '.join(contract.TICKET_TYPES)}")
    return contract.TICKET_TYPES[name]


def _number(name, default, low, high):
    text = request.args.get(name, "").strip()
    if not text:
        return default
    # ASCII only: "²" is a digit to isdigit() but not to int().
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise BadRequest(f"Invalid {name}", f"a whole number from {low} to {high}")
    return int(text)


def _display_mode():
    mode = request.args.get("sysparm_display_value", "false").strip().lower() or "false"
    if mode not in DISPLAY_MODES:
        raise BadRequest("Invalid sysparm_display_value", "use true, false or all")
    return mode


def _fields():
    names = [name.strip() for name in request.args.get("sysparm_fields", "").split(",") if name.strip()]
    # Like an instance, unknown fields are left out of the answer rather than refused.
    return [name for name in names if name in FIELDS or name in DOT_WALKED] if names else list(FIELDS)


@bp.get("/<table>")
@require_roles(*TABLE_API_ROLES, allow_session=False)
def list_records(table):
    ticket_type = _table(table)
    try:
        query = parse_query(request.args.get("sysparm_query", ""), QUERYABLE)
    except QueryError as error:
        raise BadRequest("Invalid sysparm_query", str(error)) from None
    limit = _number("sysparm_limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _number("sysparm_offset", 0, 0, MAX_OFFSET)
    fields, mode = _fields(), _display_mode()
    records, total = find_records(ticket_type, query, limit, offset)
    response = jsonify(result=[record_document(task, fields, mode) for task in records])
    response.headers["X-Total-Count"] = str(total)
    return response


@bp.get("/<table>/<sys_id>")
@require_roles(*TABLE_API_ROLES, allow_session=False)
def get_record(table, sys_id):
    from app.models import Task

    ticket_type = _table(table)
    task = Task.get_or_none((Task.sys_id == sys_id) & (Task.sys_class_name == ticket_type.table))
    if task is None:
        raise NotFound("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
    return jsonify(result=record_document(task, _fields(), _display_mode()))
