"""The JSON read API over tickets and deliveries, in ServiceNow's `{"result": ...}` envelope."""
import re

from flask import Blueprint, g, jsonify, request, url_for
from marshmallow import Schema, ValidationError, fields, validate

from app import contract
from app.auth.basic import require_roles
from app.errors import BadRequest, Conflict, NotFound
from app.fields import SYS_ID, Document, NaiveUtc, RequestBody
from app.models import IncomingRequest, Task
from app.tickets.cursors import decode_cursor, encode_cursor, older_than
from app.tickets.documents import (
    IncomingRequestSchema, TicketDocumentSchema, ticket_document, ticket_summary, ticket_url,
)
from app.tickets.rows import newest_first, read_rows

bp = Blueprint("tickets_api", __name__, url_prefix=contract.API_PREFIX)

MAX_LIMIT = 1000
# Deeper than any real list; beyond 2**63 the databases cannot even take the number.
MAX_OFFSET = 10 ** 9


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


class IncomingQuerySchema(Schema):
    status = fields.String(validate=validate.OneOf(contract.INCOMING_STATUSES))
    request_id = fields.String()
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))


# Built once: a marshmallow schema deep-copies its fields on every instantiation.
_TICKET_QUERY = TicketQuerySchema()
_INCOMING_QUERY = IncomingQuerySchema()


def _query_args(schema):
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as error:
        detail = "; ".join(f"{name}: {' '.join(map(str, messages))}" for name, messages in error.messages.items())
        raise BadRequest("Invalid query", detail, extra={"fields": error.messages}) from None


def find_task(number):
    task = Task.get_or_none(Task.number == number.upper())
    if task is None:
        raise NotFound(f"No ticket {number}")
    return task


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
    args = _query_args(_TICKET_QUERY)
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
    args = _query_args(_INCOMING_QUERY)
    query = IncomingRequest.select()
    if "status" in args:
        query = query.where(IncomingRequest.status == args["status"])
    if "request_id" in args:
        query = query.where(IncomingRequest.request_id == args["request_id"])
    query = (query.order_by(IncomingRequest.received_at.desc(), IncomingRequest.id.desc())
             .limit(args["limit"]).offset(args["offset"]))
    return jsonify(result=IncomingRequestSchema(many=True, exclude=("headers",)).dump(query))


# NUL (PostgreSQL refuses it) and unpaired surrogates (legal as JSON escapes, not in UTF-8)
# cannot be stored in either database.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _json_body(*stored):
    """The JSON object sent; BadRequest when it is none, or a field in `stored` holds text no database takes."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("Send a JSON object", "the body must be a JSON object with Content-Type application/json")
    unstorable = sorted(name for name in stored if isinstance(body.get(name), str) and _UNSTORABLE.search(body[name]))
    if unstorable:
        raise BadRequest("Text cannot contain NUL characters or unpaired surrogates",
                         f"in {', '.join(unstorable)}", extra={"fields": {name: "unstorable text" for name in unstorable}})
    return body


class DecisionSchema(Document):
    """A decision the broker recorded, with where its delivery to EPM stands."""

    sys_id = fields.String(metadata=SYS_ID)
    decision = fields.String(validate=validate.OneOf(contract.DECISIONS))
    reason = fields.String()
    duration_unit = fields.String(allow_none=True, validate=validate.OneOf(
        [contract.DURATION_ONCE, *contract.DURATION_LIMITS, None]))
    duration_value = fields.Integer(allow_none=True)
    duration_sent = fields.String(allow_none=True)
    decided_by = fields.String()
    decided_at = NaiveUtc()
    delivery_status = fields.String(attribute="status", validate=validate.OneOf(contract.DELIVERY_STATUSES))
    attempts = fields.Integer(validate=validate.Range(min=0))
    last_error = fields.String(allow_none=True)
    delivered_at = NaiveUtc(allow_none=True)


class PendingApprovalSchema(Document):
    """A first approval, waiting for a second approver."""

    approver = fields.String()
    reason = fields.String()
    approvals_required = fields.Constant(2, metadata={"enum": [2]})
    created_at = NaiveUtc()


class DecisionResultSchema(Document):
    """The ticket after a decision, with the decision or the approval that waits for a second."""

    ticket = fields.Nested(TicketDocumentSchema)
    decision = fields.Nested(DecisionSchema, metadata={"optional": True})
    pending_approval = fields.Nested(PendingApprovalSchema, metadata={"optional": True})


# What the write API reads. The views check the rules themselves (decisions/rules.py), with
# the contract's messages; these say the same rules to OpenAPI.
NO_NUL = {"not": {"type": "string", "pattern": r"\x00"}}
_NOT_BLANK = {"pattern": r"\S", **NO_NUL}


def _reason():
    return fields.String(required=True, metadata={**_NOT_BLANK, "description": "why; shown to EPM and in the audit log"})


def _decision(name, unit=None, value=None):
    declared = {"decision": fields.String(required=True, validate=validate.OneOf([name])), "reason": _reason(),
                "duration_unit": fields.String(allow_none=True, metadata=NO_NUL)}
    if unit:
        declared["duration_unit"] = fields.String(required=True, validate=validate.OneOf([unit]))
    if value:
        declared["duration_value"] = fields.Raw(required=True, metadata={"anyOf": value})
    return RequestBody.from_dict(declared, name=f"{name}{(unit or '').capitalize()}Schema")


# Whole minutes 5-1440 or hours 1-24, as a number or as digits.
DECISION_REQUEST_SCHEMAS = (
    _decision(contract.DECISION_DENIED),
    _decision(contract.DECISION_APPROVED, contract.DURATION_ONCE),
    _decision(contract.DECISION_APPROVED, contract.DURATION_MINUTES, [
        {"type": "integer", "minimum": 5, "maximum": 1440},
        {"type": "string", "pattern": r"^0*([5-9]|[1-9][0-9]|[1-9][0-9]{2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)$"}]),
    _decision(contract.DECISION_APPROVED, contract.DURATION_HOURS, [
        {"type": "integer", "minimum": 1, "maximum": 24}, {"type": "string", "pattern": r"^0*([1-9]|1[0-9]|2[0-4])$"}]),
)


class TicketChangeSchema(Schema):
    """A new state and/or a work note; at least one (OpenAPI: minProperties)."""

    state = fields.String(validate=validate.OneOf(sorted({
        text for ticket_type in contract.TICKET_TYPES.values() for value, label in ticket_type.states
        for text in (label, str(value))})), metadata={
        "description": "a state of the ticket's own type, by label or number (409 for another type's)"})
    work_note = fields.String(validate=validate.Length(max=4000), metadata=_NOT_BLANK)


# The write API takes Basic auth only: a browser session must go through the
# CSRF-protected forms instead.
@bp.post("/tickets/<number>/decision")
@require_roles(*contract.APPROVER_ROLES, allow_session=False)
def post_decision(number):
    from app.decisions.approvals import PendingApproval, submit_decision

    task = find_task(number)
    body = _json_body("decision", "reason", "duration_unit", "duration_value")
    # A policy may require two approvers: the first approval is then stored, not sent.
    decision = submit_decision(task, g.account, body.get("decision"), body.get("reason"), body.get("duration_unit"),
                               body.get("duration_value"), ticket_url(task))
    if isinstance(decision, PendingApproval):
        return jsonify(result={"ticket": ticket_document(find_task(number)),
                               "pending_approval": PendingApprovalSchema().dump(decision)}), 202
    status = 201 if decision.status == contract.DELIVERY_DELIVERED else 202
    return jsonify(result={"ticket": ticket_document(find_task(number)),
                           "decision": DecisionSchema().dump(decision)}), status


def _check_state_exists(task, state):
    """Conflict for a state of another ticket type: the request is sound, this ticket's type has no such state."""
    if task.ticket_type.state_value(state) is None and any(
            ticket_type.state_value(state) is not None for ticket_type in contract.TICKET_TYPES.values()):
        labels = ", ".join(label for _, label in task.ticket_type.states)
        raise Conflict(f"A {task.ticket_type.label} has no state {state!r}; its states are {labels}",
                       extra={"fields": {"state": "not a state of this ticket type"}})


@bp.patch("/tickets/<number>")
@require_roles(*contract.APPROVER_ROLES, allow_session=False)
def patch_ticket(number):
    from app.decisions.service import add_work_note, change_state

    task = find_task(number)
    body = _json_body("state", "work_note")
    unknown = set(body) - {"state", "work_note"}
    if unknown or not body:
        raise BadRequest("Send state and/or work_note", f"unknown fields: {', '.join(sorted(unknown))}" if unknown
                         else "nothing to change")
    not_text = sorted(name for name, value in body.items() if not isinstance(value, str))
    if not_text:
        raise BadRequest("Send state and work_note as text", f"not text: {', '.join(not_text)}",
                         extra={"fields": {name: "not text" for name in not_text}})
    if "state" in body:
        _check_state_exists(task, body["state"])
        task = change_state(task, g.account, body["state"])
    if "work_note" in body:
        add_work_note(task, g.account, body["work_note"])
    return jsonify(result=ticket_document(find_task(number)))
