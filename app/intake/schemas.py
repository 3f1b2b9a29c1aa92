"""Marshmallow schemas for the four EPM webhook events (contract/epm.md §1).

Keys are matched without regard to case, every value may arrive as a string or a
placeholder, and keys nobody declared are kept. A value of the wrong shape (an
object where text belongs) is a field-level error.
"""
from marshmallow import INCLUDE, Schema, ValidationError, fields, pre_load, validate

from app import contract
from app.intake.payload import parse_timestamp, text_value

# EPM's RequestIds are GUIDs; the column holding them is 100 characters wide.
MAX_REQUEST_ID_LENGTH = 100
# A value EPM fills in from a template: text (numbers and true/false are read as text), or
# nothing; empty text and an unfilled `%%placeholder%%` count as nothing (OpenAPI's words).
EPM_VALUE = {"type": ["string", "number", "boolean"], "maxLength": 4000}


class EpmText(fields.Field):
    """A scalar EPM value as text; empty or `%%placeholder%%` becomes None."""

    def __init__(self, **kwargs):
        if not kwargs.get("required"):
            kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("metadata", EPM_VALUE)
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = text_value(value)
        if text is not None and not isinstance(text, str):
            raise ValidationError("Expected a text value.")
        if text is not None and len(text) > 4000:
            raise ValidationError("Longer than 4000 characters.")
        return text


class EpmTimestamp(EpmText):
    """An ISO 8601 timestamp as naive UTC; unreadable or missing becomes None."""

    def _deserialize(self, value, attr, data, **kwargs):
        super()._deserialize(value, attr, data, **kwargs)
        return parse_timestamp(value)


class EpmSchema(Schema):
    """Matches incoming keys to declared ones case-insensitively and keeps the rest."""

    class Meta:
        unknown = INCLUDE

    @pre_load
    def _canonical_keys(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.")
        declared = {(field.data_key or name).casefold(): field.data_key or name
                    for name, field in self.fields.items()}
        result = {}
        for key, value in data.items():
            canonical = declared.get(str(key).casefold(), key)
            # Two spellings of one key: the first filled one wins, as for duplicates.
            if canonical not in result or text_value(result[canonical]) is None:
                result[canonical] = value
        return result


def _text(name):
    return EpmText(data_key=name)


def _timestamp(name):
    return EpmTimestamp(data_key=name)


class EventSchema(EpmSchema):
    """The fields every event carries."""

    event_type = EpmText(data_key="EventType", required=True)
    request_id = EpmText(data_key="RequestId", required=True, allow_none=False, metadata={
        **EPM_VALUE, "maxLength": MAX_REQUEST_ID_LENGTH, "pattern": r"\S",
        "not": {"type": "string", "pattern": r"^\s*%%[^%]*%%\s*$"},
        "description": "EPM's request GUID: one ticket per RequestId and kind of request"})
    tenant_id = _text("TenantId")
    timestamp = _timestamp("Timestamp")
    epm_ticket_number = _text("TicketNumber")

    @pre_load
    def _require_request_id(self, data, **kwargs):
        # A RequestId that is present but blank is as useless as a missing one.
        if "RequestId" in data and text_value(data["RequestId"]) is None:
            raise ValidationError({"RequestId": ["RequestId must not be empty."]})
        request_id = text_value(data.get("RequestId"))
        if isinstance(request_id, str) and len(request_id) > MAX_REQUEST_ID_LENGTH:
            raise ValidationError({"RequestId": [f"RequestId is longer than {MAX_REQUEST_ID_LENGTH} characters."]})
        return data


# `requestInfo` of URM_Native_Ticket_Created: every declared key as text, extras kept.
RequestInfoSchema = EpmSchema.from_dict(
    {key: EpmText(data_key=key) for key in contract.URM_REQUEST_INFO_KEYS}, name="RequestInfoSchema"
)


class ApplicationRequestCreatedSchema(EventSchema):
    request_info = fields.Nested(RequestInfoSchema, data_key="requestInfo", load_default=dict)


class ApplicationDecisionSchema(EpmSchema):
    decision = _text("Decision")
    decision_time = _timestamp("DecisionTime")
    performed_by = _text("DecisionPerformedByUser")
    duration = _text("Duration")


class ApplicationDecisionUpdateSchema(EventSchema):
    request_info = fields.Nested(ApplicationDecisionSchema, data_key="requestInfo", load_default=dict)


class AdminRequestCreatedSchema(EventSchema):
    computer_id = _text("ComputerId")
    group_id = _text("GroupId")
    reason = _text("Reason")
    user_id = _text("UserId")
    user_name = _text("UserName")
    duration_requested = _text("DurationRequested")


class AdminDecisionUpdateSchema(EventSchema):
    start_time = _timestamp("StartTime")
    end_time = _timestamp("EndTime")
    decision = _text("Decision")
    decision_time = _timestamp("DecisionTime")
    performed_by = _text("DecisionPerformedByUser")
    duration = _text("Duration")
    duration_requested = _text("DurationRequested")


SCHEMAS = {
    contract.URM_TICKET_CREATED.name: ApplicationRequestCreatedSchema,
    contract.URM_DECISION_UPDATE.name: ApplicationDecisionUpdateSchema,
    contract.ADMIN_TICKET_CREATED.name: AdminRequestCreatedSchema,
    contract.ADMIN_TICKET_UPDATED.name: AdminDecisionUpdateSchema,
}


# One instance per event, reused: building a schema (and its nested requestInfo schema of
# ~50 fields) cost more than validating a delivery with it. load() keeps no state between calls.
_SCHEMA_INSTANCES = {name: schema() for name, schema in SCHEMAS.items()}


def load_event(document):
    """Validate a delivery: returns (EventType, fields) or raises ValidationError by field."""
    if "EventType" not in {str(key) for key in document} and not any(
            str(key).casefold() == "eventtype" for key in document):
        raise ValidationError({"EventType": ["Missing data for required field."]})
    raw_type = next(value for key, value in document.items() if str(key).casefold() == "eventtype")
    event = contract.find_event_type(text_value(raw_type))
    if event is None:
        expected = ", ".join(contract.EVENT_TYPES)
        raise ValidationError({"EventType": [f"Unknown event type {str(raw_type)[:100]!r}; expected one of {expected}."]})
    return event, _SCHEMA_INSTANCES[event.name].load(document)


class DeliveryResultSchema(Schema):
    """The webhook's answer: the stored delivery, what became of it, and its ticket."""

    incoming_request = fields.String(required=True, metadata={"pattern": "^[0-9a-f]{32}$"})
    status = fields.String(required=True, validate=validate.OneOf(contract.INCOMING_STATUSES))
    ticket = fields.String(required=True, allow_none=True,
                           metadata={"description": "none while an update waits for its created event"})
