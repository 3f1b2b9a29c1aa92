"""EPM's webhook JSON as it really arrives (duplicate keys, string values, `%%placeholders%%`, .NET
timestamps), read by marshmallow schemas for the four events (contract/epm.md §1).

Keys match without regard to case and undeclared keys are kept; a value of the wrong shape is a field error."""
import json
import re
from datetime import datetime, timezone
from functools import cached_property

from marshmallow import INCLUDE, Schema, ValidationError, fields, missing as missing_, post_load, pre_load, validate

from app import contract
from app.errors import BadRequest

# What an id may not carry: C0 and C1 controls, DEL, and U+FFFD (what `storable` made of a NUL
# or an unpaired surrogate). Stripping them could leave an empty or a different id: it is refused.
_CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f\ufffd"
_NOT_IN_AN_ID = re.compile(f"[{_CONTROL_CHARACTERS}]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<fraction>\d+))?\s*(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


NOT_AN_OBJECT = "The body is not a JSON object"
# EPM's templates nest two levels (`requestInfo`). A body nested deeper than this is refused (400, its raw body
# stored), whatever it holds: whether a body is read then depends neither on Python's stack nor on its escapes.
MAX_NESTING = 64
TOO_DEEP = f"the body nests its arrays and objects more than {MAX_NESTING} levels deep"
_JSON_KINDS = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}


def _is_blank(value):
    return value is None or (isinstance(value, str) and _filled(value) is None)


def _filled(text):
    """`text` stripped, or None when that leaves nothing or an unreplaced `%%placeholder%%`."""
    text = text.strip()
    return None if not text or (text.startswith("%%") and contract.PLACEHOLDER.match(text)) else text


def _keep_first_filled(pairs):
    """A JSON object keeping, for a repeated key, its first non-blank value: EPM's template repeats
    `workstyle`, and edited templates may repeat others with one copy unfilled."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result  # no key repeats: the common case, built without a Python loop
    result = {}
    for key, value in pairs:
        if key not in result or (_is_blank(result[key]) and not _is_blank(value)):
            result[key] = value
    return result


def parse_json_object(raw_body):
    """The delivery's top-level JSON object, its text made storable (`storable`); BadRequest
    with the reason otherwise. The Content-Type is not consulted: EPM's administrator chooses
    it per webhook (contract 5.5), so the body alone says whether it is a delivery."""
    try:
        text = raw_body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest(NOT_AN_OBJECT, f"the body is not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        document = json.loads(text, object_pairs_hook=_keep_first_filled)
    except RecursionError:
        raise BadRequest(NOT_AN_OBJECT, TOO_DEEP) from None
    except ValueError as error:
        # ValueError beyond JSONDecodeError: a number longer than Python converts (4300 digits).
        raise BadRequest(NOT_AN_OBJECT, f"the body is not JSON: {error}") from None
    if not isinstance(document, dict):
        kind = _JSON_KINDS.get(type(document), "a number")
        raise BadRequest(NOT_AN_OBJECT, f"the body is JSON but {kind}, not an object")
    # Fewer brackets than the limit cannot nest beyond it: the common body is not walked for its depth.
    if text.count("{") + text.count("[") > MAX_NESTING and _nests_deeper(document, MAX_NESTING):
        raise BadRequest(NOT_AN_OBJECT, TOO_DEEP)
    # Only a \u escape can put a NUL or an unpaired surrogate into the parsed text: UTF-8 carries no
    # surrogates and JSON no raw control characters inside a string.
    return storable(document) if "\\u" in text else document


def _nests_deeper(document, limit):
    """True when `document`'s arrays and objects nest more than `limit` levels (the outermost is level 1)."""
    pending = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False


def storable(value):
    """`value` with NUL characters and unpaired surrogates replaced by U+FFFD: no text column stores them
    (the raw body keeps the original)."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def text_value(value):
    """An EPM scalar as text, None for empty and placeholder values; a non-scalar is returned as is, to reject."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return _filled(value)
    return value


def parse_timestamp(value):
    """An EPM timestamp (.NET's 7 digits, no zone = UTC) as naive UTC, or None: an unreadable one
    loses no delivery, the raw body keeps it."""
    text = text_value(value)
    if not isinstance(text, str):
        return None
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    zone = (match["zone"] or "Z").upper()
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:] or '00'}"
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{clock}.{fraction}{zone}")
        # .NET's DateTime.MinValue or MaxValue written with an offset falls outside the years 1 to 9999 in UTC.
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):
        return None


# EPM's RequestIds are GUIDs; the column holding them is 100 characters wide. RequestId is the one value with a
# length limit: it is the key joining a request's events, never cut. Any other value is kept whole however long
# (a PowerShell -EncodedCommand in cmdArgs runs to Windows' 32,767 characters): the raw body and request_info
# hold it, and only a narrow column takes a clipped copy (app/tickets/service.py). The body's size is limited.
MAX_REQUEST_ID_LENGTH = 100
REQUEST_ID_EMPTY = "RequestId must not be empty."
# A value EPM fills in from a template: text (numbers and true/false are read as text), or
# nothing; empty text and an unfilled `%%placeholder%%` count as nothing (OpenAPI's words).
EPM_VALUE = {"type": ["string", "number", "boolean"]}
# An id's text: no control characters (`_NOT_IN_AN_ID`).
ID_PATTERN = f"^[^{_CONTROL_CHARACTERS}]*$"


class EpmText(fields.Field):
    """A scalar EPM value as text; empty or `%%placeholder%%` becomes None."""

    def __init__(self, **kwargs):
        if not kwargs.get("required"):
            kwargs.setdefault("load_default", None)
        kwargs.setdefault("allow_none", True)
        kwargs.setdefault("metadata", EPM_VALUE)
        super().__init__(**kwargs)

    def _validate(self, value):
        # marshmallow combines the field's validators into a new And() for each value; EPM's fields declare none.
        if self.validators:
            super()._validate(value)

    def deserialize(self, value, attr=None, data=None, **kwargs):
        # A value that is there, for a field with no validators and no pre- or post-load functions (every EPM
        # field): marshmallow's steps around `_deserialize` (the missing and null checks, the validators) have
        # nothing to do, and some twenty fields a delivery go through them.
        if value is None or value is missing_ or self.validators or self.pre_load or self.post_load:
            return super().deserialize(value, attr, data, **kwargs)
        return self._deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = text_value(value)
        if text is not None and not isinstance(text, str):
            raise ValidationError("Expected a text value.")
        return text


class EpmId(EpmText):
    """An id EPM fills in (RequestId, TenantId, TicketNumber, ComputerId, UserId, GroupId) as text;
    one carrying control characters is refused, never stripped to something else."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _NOT_IN_AN_ID.search(value):
            raise ValidationError(f"{self.data_key} must not contain control characters.")
        return super()._deserialize(value, attr, data, **kwargs)


class EpmRequestId(EpmId):
    """EPM's request GUID: one ticket per RequestId and kind of request, so never blank or over its column."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if text is None:
            raise ValidationError(REQUEST_ID_EMPTY)
        if len(text) > MAX_REQUEST_ID_LENGTH:
            raise ValidationError(f"RequestId is longer than {MAX_REQUEST_ID_LENGTH} characters.")
        return text


class EpmObject(fields.Nested):
    """A nested EPM object (`requestInfo`); null, empty or an unreplaced placeholder is no value."""

    def __init__(self, schema, data_key):
        super().__init__(schema, data_key=data_key, load_default=dict, allow_none=True)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and _is_blank(value):
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class EpmCount(EpmText):
    """A whole number EPM may send as text or as a number: "23.0" and 23.0 are read as "23";
    any other text (Duration's "Once") is kept as it came."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        match = contract.ZERO_FRACTION.match(text or "")
        if not match:
            return text
        try:
            return str(int(match[1]))
        except ValueError:
            # Over Python's 4,300 digits for int(): no count of seconds is that long.
            raise ValidationError(f"{self.data_key} is a number too long to be a count.") from None


class EpmTimestamp(EpmText):
    """An ISO 8601 timestamp as naive UTC; unreadable or missing becomes None."""

    def _deserialize(self, value, attr, data, **kwargs):
        super()._deserialize(value, attr, data, **kwargs)
        return parse_timestamp(value)


class EpmSchema(Schema):
    """Matches incoming keys to declared ones case-insensitively and keeps the rest."""

    class Meta:
        unknown = INCLUDE

    @cached_property
    def _declared_keys(self):
        """Each declared key by its case-folded spelling."""
        return {(field.data_key or name).casefold(): field.data_key or name for name, field in self.fields.items()}

    @cached_property
    def _declared_attributes(self):
        """The names declared fields load into: never read from the delivery (`_canonical_keys`), and what
        `_no_placeholders_kept` leaves to the fields."""
        return frozenset(field.attribute or name for name, field in self.load_fields.items())

    @pre_load
    def _canonical_keys(self, data, **kwargs):
        if not isinstance(data, dict):
            raise ValidationError("Expected a JSON object.")
        declared, loaded_names = self._declared_keys, self._declared_attributes
        result = {}
        for key, value in data.items():
            canonical = declared.get(str(key).casefold())
            if canonical is None:
                if key in loaded_names:
                    # An undeclared key spelled as a field's loaded name ("request_id") would replace the
                    # value read from the declared key ("RequestId") unvalidated: not read (the raw body keeps it).
                    continue
                canonical = key
            # Two spellings of one key: the first filled one wins, as for duplicates.
            if canonical not in result or text_value(result[canonical]) is None:
                result[canonical] = value
        return result

    @post_load
    def _no_placeholders_kept(self, data, **kwargs):
        # Declared fields are read already; a kept extra that is empty or a placeholder is no value too.
        for key in data.keys() - self._declared_attributes:
            if _is_blank(data[key]):
                data[key] = None
        return data


def _text(name):
    return EpmText(data_key=name)


def _id(name):
    return EpmId(data_key=name, metadata={**EPM_VALUE, "pattern": ID_PATTERN})


def _count(name):
    return EpmCount(data_key=name)


def _timestamp(name):
    return EpmTimestamp(data_key=name)


class EventSchema(EpmSchema):
    """The fields every event carries."""

    event_type = EpmText(data_key="EventType", required=True)
    request_id = EpmRequestId(data_key="RequestId", required=True, allow_none=False, error_messages={
        "null": REQUEST_ID_EMPTY}, metadata={
        **EPM_VALUE, "maxLength": MAX_REQUEST_ID_LENGTH, "pattern": ID_PATTERN, "allOf": [{"pattern": r"\S"}],
        "not": {"type": "string", "pattern": contract.PLACEHOLDER.pattern.replace("^", r"^\s*").replace("$", r"\s*$")},
        "description": "EPM's request GUID: one ticket per RequestId and kind of request"})
    tenant_id = _id("TenantId")
    timestamp = _timestamp("Timestamp")
    epm_ticket_number = _id("TicketNumber")


# `requestInfo` of URM_Native_Ticket_Created: every declared key as text, extras kept.
RequestInfoSchema = EpmSchema.from_dict(
    {key: _id(key) if key == "GroupId" else _text(key) for key in contract.URM_REQUEST_INFO_KEYS},
    name="RequestInfoSchema"
)


class ApplicationRequestCreatedSchema(EventSchema):
    request_info = EpmObject(RequestInfoSchema, "requestInfo")


class ApplicationDecisionSchema(EpmSchema):
    decision = _text("Decision")
    decision_time = _timestamp("DecisionTime")
    performed_by = _text("DecisionPerformedByUser")
    duration = _count("Duration")


class ApplicationDecisionUpdateSchema(EventSchema):
    request_info = EpmObject(ApplicationDecisionSchema, "requestInfo")


class AdminRequestCreatedSchema(EventSchema):
    computer_id = _id("ComputerId")
    group_id = _id("GroupId")
    reason = _text("Reason")
    user_id = _id("UserId")
    user_name = _text("UserName")
    duration_requested = _count("DurationRequested")


class AdminDecisionUpdateSchema(EventSchema, ApplicationDecisionSchema):
    start_time = _timestamp("StartTime")
    end_time = _timestamp("EndTime")
    duration_requested = _count("DurationRequested")


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
    spellings = [value for key, value in document.items() if str(key).casefold() == "eventtype"]
    if not spellings:
        raise ValidationError({"EventType": ["Missing data for required field."]})
    # Two spellings of the key: the first filled one wins, as for every other key (EpmSchema._canonical_keys).
    raw_type = next((value for value in spellings if text_value(value) is not None), spellings[0])
    event = contract.find_event_type(text_value(raw_type))
    if event is None:
        expected = ", ".join(contract.EVENT_TYPES)
        raise ValidationError(
            {"EventType": [f"Unknown event type {str(raw_type)[:100]!r}; expected one of {expected}."]})
    return event, _SCHEMA_INSTANCES[event.name].load(document)


class DeliveryResultSchema(Schema):
    """The webhook's answer: the stored delivery, what became of it, and its ticket."""

    incoming_request = fields.String(required=True, attribute="sys_id", metadata={"pattern": "^[0-9a-f]{32}$"})
    status = fields.String(required=True, validate=validate.OneOf(contract.INCOMING_STATUSES))
    ticket = fields.Function(
        lambda incoming: incoming.task.number if incoming.task_id else None, required=True, allow_none=True,
        metadata={"type": "string", "description": "none while an update waits for its created event, and for a "
                                                   "request whose ticket retention deleted"})
