"""The JSON shape of a ticket, as the read API and the browser's data views give it."""
from marshmallow import Schema, fields

from app import contract
from app.models import WorkNote

_ADMIN_DETAILS = ("computer_id", "group_id", "user_id", "user_name", "duration_requested")


class DecisionSchema(Schema):
    decision = fields.String(attribute="final_decision")
    decision_time = fields.DateTime(attribute="final_decision_time")
    performed_by = fields.String(attribute="final_decision_by")
    duration = fields.String(attribute="final_duration")
    start_time = fields.DateTime(attribute="final_start_time")
    end_time = fields.DateTime(attribute="final_end_time")
    final = fields.Boolean(attribute="decision_final")


class TicketSchema(Schema):
    sys_id = fields.String()
    number = fields.String()
    table = fields.String(attribute="sys_class_name")
    ticket_type = fields.Function(lambda task: task.ticket_type.label)
    state = fields.String(attribute="state_label")
    state_value = fields.Integer(attribute="state")
    kind = fields.String()
    kind_label = fields.Function(lambda task: contract.KIND_LABELS[task.kind])
    request_id = fields.String()
    short_description = fields.String()
    assignment_group = fields.String()
    category = fields.String()
    requester = fields.String()
    host = fields.String()
    subject = fields.String()
    publisher = fields.String()
    requested_duration = fields.String()
    opened_at = fields.DateTime()
    updated_at = fields.DateTime()
    closed_at = fields.DateTime()


def ticket_document(task, jit=None):
    """The ticket with every EPM detail received and EPM's finalized decision."""
    jit = jit or task.jit_request
    document = TicketSchema().dump(task)
    details = {
        "tenant_id": jit.tenant_id,
        "epm_ticket_number": jit.epm_ticket_number,
        "requested_at": jit.requested_at.isoformat() if jit.requested_at else None,
        "reason": jit.reason,
    }
    if task.kind == contract.KIND_APPLICATION:
        details["request_info"] = jit.request_info
    else:
        details.update({name: getattr(jit, name) for name in _ADMIN_DETAILS})
    document["details"] = details
    document["epm_decision"] = DecisionSchema().dump(jit)
    document["work_notes"] = [
        {"author": note.author, "text": note.text, "system": note.system, "created_at": note.created_at.isoformat()}
        for note in task.work_notes.order_by(WorkNote.created_at, WorkNote.id)
    ]
    return document


_SUMMARY_TEXT = ("sys_id", "number", "kind", "request_id", "short_description", "assignment_group", "category",
                 "requester", "host", "subject", "publisher", "requested_duration")


def _iso(moment):
    return None if moment is None else moment.isoformat()


def ticket_summary(task):
    """A ticket as TicketSchema dumps it, built directly: a list page makes up to 1000 of these,
    and a marshmallow schema per row cost more than the query (tests/perf checks they agree)."""
    document = {name: getattr(task, name) for name in _SUMMARY_TEXT}
    document.update(
        table=task.sys_class_name, ticket_type=task.ticket_type.label, state=task.state_label, state_value=task.state,
        kind_label=contract.KIND_LABELS[task.kind], opened_at=_iso(task.opened_at), updated_at=_iso(task.updated_at),
        closed_at=_iso(task.closed_at),
    )
    return document
