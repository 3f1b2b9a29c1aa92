"""The JSON write API over tickets: a decision (`POST /tickets/<number>/decision`) and a
state change or work note (`PATCH /tickets/<number>`), in ServiceNow's `{"result": ...}` envelope."""
import re

from flask import Blueprint, g, jsonify, request
from marshmallow import Schema, fields, validate

from app import contract
from app.auth.basic import require_roles
from app.auth.step_up import MSG_STEP_UP_ELSEWHERE, approval_needs_step_up
from app.decisions.approvals import submit_decision
from app.decisions.models import PendingApproval
from app.decisions.service import add_work_note, change_state
from app.errors import BadRequest, Conflict, Forbidden
from app.fields import NO_NUL, SYS_ID, Document, NaiveUtc, RequestBody
from app.tickets.documents import TicketDocumentSchema, ticket_document, ticket_url
from app.tickets.service import find_task

bp = Blueprint("decisions_api", __name__, url_prefix=contract.API_PREFIX)

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
                         f"in {', '.join(unstorable)}",
                         extra={"fields": {name: "unstorable text" for name in unstorable}})
    return body


class DecisionDocumentSchema(Document):
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
    decision = fields.Nested(DecisionDocumentSchema, metadata={"optional": True})
    pending_approval = fields.Nested(PendingApprovalSchema, metadata={"optional": True})


# What the write API reads. The views check the rules themselves (decisions/rules.py), with
# the contract's messages; these say the same rules to OpenAPI.
_NOT_BLANK = {"pattern": r"\S", **NO_NUL}


def _reason():
    return fields.String(required=True,
                         metadata={**_NOT_BLANK, "description": "why; shown to EPM and in the audit log"})


def _decision(name, unit=None, value=None):
    declared = {"decision": fields.String(required=True, validate=validate.OneOf([name])), "reason": _reason(),
                "duration_unit": fields.String(allow_none=True, metadata=NO_NUL)}
    if unit:
        declared["duration_unit"] = fields.String(required=True, validate=validate.OneOf([unit]))
    if value:
        declared["duration_value"] = fields.Raw(required=True, metadata={"anyOf": value})
    return RequestBody.from_dict(declared, name=f"{name}{(unit or '').capitalize()}Schema")


def _whole(unit):
    low, high = contract.DURATION_LIMITS[unit]
    return {"type": "integer", "minimum": low, "maximum": high}


# Whole minutes 5-1440 or hours 1-24, as a number or as digits.
DECISION_REQUEST_SCHEMAS = (
    _decision(contract.DECISION_DENIED),
    _decision(contract.DECISION_APPROVED, contract.DURATION_ONCE),
    _decision(contract.DECISION_APPROVED, contract.DURATION_MINUTES, [
        _whole(contract.DURATION_MINUTES),
        {"type": "string", "pattern": r"^0*([5-9]|[1-9][0-9]|[1-9][0-9]{2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)$"}]),
    _decision(contract.DECISION_APPROVED, contract.DURATION_HOURS, [
        _whole(contract.DURATION_HOURS), {"type": "string", "pattern": r"^0*([1-9]|1[0-9]|2[0-4])$"}]),
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
    task = find_task(number)
    body = _json_body("decision", "reason", "duration_unit", "duration_value")
    if str(body.get("decision") or "").strip().capitalize() == contract.DECISION_APPROVED and \
            approval_needs_step_up(g.account, task):
        raise Forbidden(MSG_STEP_UP_ELSEWHERE, ticket_url(task), extra={"ticket_url": ticket_url(task)})
    # A policy may require two approvers: the first approval is then stored, not sent.
    decision = submit_decision(task, g.account, body.get("decision"), body.get("reason"), body.get("duration_unit"),
                               body.get("duration_value"), ticket_url(task))
    if isinstance(decision, PendingApproval):
        return jsonify(result={"ticket": ticket_document(find_task(number)),
                               "pending_approval": PendingApprovalSchema().dump(decision)}), 202
    status = 201 if decision.status == contract.DELIVERY_DELIVERED else 202
    return jsonify(result={"ticket": ticket_document(find_task(number)),
                           "decision": DecisionDocumentSchema().dump(decision)}), status


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
