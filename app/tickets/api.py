"""The JSON read API over tickets and deliveries, in ServiceNow's `{"result": ...}` envelope."""
from flask import Blueprint, jsonify, request, url_for
from marshmallow import Schema, ValidationError, fields, validate

from app import contract
from app.auth.basic import require_roles
from app.fields import MAX_OFFSET, load_query
from app.models import IncomingRequest, Task
from app.pages import KeysetPageSchema, keyset_page
from app.tickets.cursors import decode_cursor, encode_cursor, older_than
from app.tickets.documents import IncomingRequestSchema, ticket_document, ticket_summary
from app.tickets.rows import newest_first, read_rows
from app.tickets.service import find_task

bp = Blueprint("tickets_api", __name__, url_prefix=contract.API_PREFIX)

MAX_LIMIT = 1000
# Deeper than any real list; beyond 2**63 the databases cannot even take the number.


class TicketQuerySchema(Schema):
    request_id = fields.String()
    state = fields.String(validate=validate.OneOf(contract.ALL_STATE_LABELS, error="Unknown state {input!r}."))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    # The last ticket of the previous page (its Link rel="next" header): deep pages by index seek.
    cursor = fields.String(validate=lambda text: _check_cursor(text))


def _check_cursor(text):
    if decode_cursor(text) is None:
        raise ValidationError("Not a cursor; use the one in the previous page's Link header.")


class IncomingQuerySchema(KeysetPageSchema):
    status = fields.String(validate=validate.OneOf(contract.INCOMING_STATUSES))
    request_id = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LIMIT))


# Built once: a marshmallow schema deep-copies its fields on every instantiation.
_TICKET_QUERY = TicketQuerySchema()
_INCOMING_QUERY = IncomingQuerySchema()


@bp.get("/tickets/<number>")
@require_roles(*contract.APPROVER_ROLES)
def get_ticket(number):
    return jsonify(result=ticket_document(find_task(number)))


def state_condition(label):
    """Tasks whose state has this label in their own ticket type."""
    condition = None
    for ticket_type in contract.TICKET_TYPES.values():
        value = ticket_type.state_value(label)
        if value is None:
            continue
        clause = (Task.sys_class_name == ticket_type.table) & (Task.state == value)
        condition = clause if condition is None else condition | clause
    return condition


@bp.get("/tickets")
@require_roles(*contract.APPROVER_ROLES)
def list_tickets():
    args = load_query(_TICKET_QUERY, request.args)
    query = Task.select()
    if "request_id" in args:
        query = query.where(Task.request_id == args["request_id"])
    if "state" in args:
        query = query.where(state_condition(args["state"]))
    if "cursor" in args:
        query = query.where(older_than(decode_cursor(args["cursor"])))
    rows = read_rows(newest_first(query).limit(args["limit"]).offset(args["offset"]))
    response = jsonify(result=[ticket_summary(row) for row in rows])
    if len(rows) == args["limit"]:
        following = {**request.args.to_dict(), "cursor": encode_cursor(rows[-1])}
        following.pop("offset", None)
        response.headers["Link"] = f'<{url_for("tickets_api.list_tickets", **following)}>; rel="next"'
    return response


@bp.get("/incoming_requests")
@require_roles(contract.ROLE_ADMIN)
def list_incoming_requests():
    args = load_query(_INCOMING_QUERY, request.args)
    query = IncomingRequest.select()
    if "status" in args:
        query = query.where(IncomingRequest.status == args["status"])
    if "request_id" in args:
        query = query.where(IncomingRequest.request_id == args["request_id"])
    page = keyset_page(query, IncomingRequest, args)
    response = jsonify(result=IncomingRequestSchema(many=True, exclude=("headers",)).dump(page.rows))
    if page.older:
        following = {key: value for key, value in request.args.items() if key not in ("offset", "before", "after")}
        older = url_for("tickets_api.list_incoming_requests", **following, before=page.older)
        response.headers["Link"] = f'<{older}>; rel="next"'
    return response
