"""The JSON documents of tickets and of EPM's deliveries, as the API answers them, and the
ticket's link. The schemas are the contract: the views dump through them and
app/openapi/spec.py describes the API from them."""
import logging

from flask import current_app
from marshmallow import fields, validate

from app import contract
from app.fields import SYS_ID, Document, NaiveUtc, Utc
from app.models import WorkNote

_ADMIN_DETAILS = ("computer_id", "group_id", "user_id", "user_name", "duration_requested")
TEXT = {"type": "string"}

log = logging.getLogger(__name__)

# Said on the configuration page and once in the log of each process while server.public_url is unset.
PUBLIC_URL_UNSET = (
    "The public URL is not set ([server] public_url in config.toml, or JITBROKER_PUBLIC_URL), so the links that "
    "leave the broker (the ticket link sent to EPM with each decision, and the links in notification e-mails and "
    "chat messages) point at {base}: this host's fully qualified name and the port in PORT (8000 when unset). "
    "Approvers reaching the broker through a proxy, a TLS terminator, another name or another port cannot follow "
    "them. The broker never takes the address from a request, whose Host header whoever sends it can choose. Set "
    "it to the address approvers reach the broker at, e.g. https://jit.example.com; an https:// address also keeps "
    "the session cookie to HTTPS.")


def _text(**kwargs):
    return fields.String(allow_none=True, **kwargs)


class EpmConflictSchema(Document):
    """The latest update from EPM that contradicted the decision EPM acknowledged (contract/epm.md 5.3)."""

    decision = fields.String(attribute="conflict_decision", metadata={"description": "what the update said"})
    decision_time = NaiveUtc(attribute="conflict_decision_time", allow_none=True)
    end_time = NaiveUtc(attribute="conflict_end_time", allow_none=True)
    performed_by = _text(attribute="conflict_by")
    received_at = NaiveUtc(attribute="conflict_at", allow_none=True, metadata={
        "description": "when the broker received it (UTC, ISO 8601 without an offset)"})


class _Conflict(fields.Nested):
    """The JIT record itself, dumped through EpmConflictSchema when it keeps a conflict; otherwise null."""

    def get_value(self, obj, attr, accessor=None, default=None):
        return obj if obj.conflict_decision is not None else None


class EpmDecisionSchema(Document):
    """The decision as EPM finalized it (empty until then), what EPM's later updates made of it, and an update
    that contradicted it. None of these was sent by the broker, and none is sent back to EPM."""

    decision = _text(attribute="final_decision", metadata={
        "description": "EPM's latest final decision: after a revocation, Denied"})
    decision_time = NaiveUtc(attribute="final_decision_time", allow_none=True)
    performed_by = _text(attribute="final_decision_by")
    duration = _text(attribute="final_duration")
    start_time = NaiveUtc(attribute="final_start_time", allow_none=True)
    end_time = NaiveUtc(attribute="final_end_time", allow_none=True)
    final = fields.Boolean(attribute="decision_final")
    epm_outcome = fields.String(allow_none=True, validate=validate.OneOf(contract.EPM_OUTCOMES), metadata={
        "description": "EPM's latest state when an update after its final decision changed it: `Revoked` (Admin "
                       "Access approved, then set to Denied), `Ended early` (the session ended before its end time) "
                       "or `Changed` (Application Access: a newer, different decision); null otherwise. An older "
                       "update re-sent after a newer one changes nothing."})
    conflict = _Conflict(EpmConflictSchema, allow_none=True, metadata={
        "description": "the latest update that contradicted the decision EPM acknowledged (an approval after a "
                       "denial, which EPM does not do): kept aside, the decision above stands; null when none"})


class TicketSchema(Document):
    """A ticket as the list gives it."""

    sys_id = fields.String(metadata=SYS_ID)
    number = fields.String()
    table = fields.String(attribute="sys_class_name", validate=validate.OneOf(list(contract.TICKET_TYPES)))
    ticket_type = fields.Function(lambda task: task.ticket_type.label, metadata=TEXT)
    state = fields.String(attribute="state_label")
    state_value = fields.Integer(attribute="state")
    kind = fields.String(validate=validate.OneOf(list(contract.KIND_LABELS)))
    kind_label = fields.Function(lambda task: contract.KIND_LABELS[task.kind],
                                 metadata={"enum": list(contract.KIND_LABELS.values())})
    request_id = fields.String()
    short_description = fields.String()
    assignment_group = fields.String()
    category = fields.String()
    requester = _text()
    host = _text()
    subject = fields.String()
    publisher = _text()
    requested_duration = _text()
    opened_at = NaiveUtc()
    updated_at = NaiveUtc()
    closed_at = NaiveUtc(allow_none=True)


class DetailsSchema(Document):
    """Everything EPM sent: `request_info` for Application Access, the admin fields otherwise."""

    tenant_id = _text()
    epm_ticket_number = _text()
    requested_at = NaiveUtc(allow_none=True)
    reason = _text()
    request_info = fields.Dict(metadata={"optional": True})
    computer_id = _text(metadata={"optional": True})
    group_id = _text(metadata={"optional": True})
    user_id = _text(metadata={"optional": True})
    user_name = _text(metadata={"optional": True})
    duration_requested = _text(metadata={"optional": True})


class WorkNoteSchema(Document):
    author = fields.String()
    text = fields.String()
    system = fields.Boolean()
    created_at = NaiveUtc()


class TicketDocumentSchema(TicketSchema):
    """One ticket with everything EPM sent, EPM's decision and its work notes (ticket_document)."""

    details = fields.Nested(DetailsSchema)
    epm_decision = fields.Nested(EpmDecisionSchema)
    work_notes = fields.List(fields.Nested(WorkNoteSchema))


def ticket_document(task):
    """The ticket with every EPM detail received and EPM's finalized decision (TicketDocumentSchema
    describes it; tests/openapi holds the two together)."""
    jit = task.jit_request
    document = TicketSchema().dump(task)
    application = task.kind == contract.KIND_APPLICATION
    document["details"] = DetailsSchema(exclude=_ADMIN_DETAILS if application else ("request_info",)).dump(jit)
    document["epm_decision"] = EpmDecisionSchema().dump(jit)
    document["work_notes"] = WorkNoteSchema(many=True).dump(
        task.work_notes.order_by(WorkNote.created_at, WorkNote.id))
    return document


_SUMMARY_TEXT = ("sys_id", "number", "kind", "request_id", "short_description", "assignment_group", "category",
                 "requester", "host", "subject", "publisher", "requested_duration")


def _iso(moment):
    return None if moment is None else moment.isoformat()


def ticket_summary(task):
    """A ticket as TicketSchema dumps it, built directly: a list page makes up to 1000 of these,
    and a marshmallow schema per row cost more than the query
    (tests/tickets/test_tickets_list_rows.py checks they agree)."""
    document = {name: getattr(task, name) for name in _SUMMARY_TEXT}
    document.update(
        table=task.sys_class_name, ticket_type=task.ticket_type.label, state=task.state_label, state_value=task.state,
        kind_label=contract.KIND_LABELS[task.kind], opened_at=_iso(task.opened_at), updated_at=_iso(task.updated_at),
        closed_at=_iso(task.closed_at),
    )
    return document


class IncomingRequestSchema(Document):
    """One webhook delivery as stored; lists leave out the kept headers (and the ops list the body)."""

    sys_id = fields.String(metadata=SYS_ID)
    status = fields.String(validate=validate.OneOf(contract.INCOMING_STATUSES))
    event_type = _text()
    request_id = _text()
    ticket = fields.Function(lambda incoming: incoming.task.number if incoming.task_id else None, allow_none=True,
                             metadata=TEXT)
    received_at = Utc()
    processed_at = Utc(allow_none=True)
    error = _text()
    content_type = _text()
    source_address = _text()
    headers = fields.Dict(metadata={"optional": True,
                                    "description": "the delivery's kept headers (never its credentials)"})
    body = _text(attribute="body_text", metadata={
        "optional": True, "description": "the body as received; none when it was over the size limit"})


def public_url_notice():
    """PUBLIC_URL_UNSET with the address links use while server.public_url is unset, else None."""
    settings = current_app.extensions["settings"]
    return None if settings.public_url else PUBLIC_URL_UNSET.format(base=settings.link_base)


def warn_once_without_public_url():
    """Log PUBLIC_URL_UNSET as one WARNING the first time this app makes a link, not once per link."""
    state = current_app.extensions.setdefault("tickets", {})
    if not state.get("public_url_warned"):
        notice = public_url_notice()
        if notice:
            state["public_url_warned"] = True
            log.warning(notice)


def ticket_url(task):
    """The ticket's page, for every link that leaves the broker (EPM's ticketUrl, e-mail, chat): from
    server.public_url, else this host's name and PORT (Settings.link_base); never from the request."""
    warn_once_without_public_url()
    return f"{current_app.extensions['settings'].link_base}/tickets/{task.number}"
