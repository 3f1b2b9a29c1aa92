"""The operations records as JSON documents: the schemas the API dumps through and OpenAPI describes."""
import json

from marshmallow import fields, validate

from app import contract
from app.fields import SYS_ID, Document, RequestBody, Utc
from app.ops import replay

NUMBER = {"type": ["number", "null"]}


def pretty_body(text):
    """A JSON body indented for reading; other text as it is (templates escape either)."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _text(**kwargs):
    return fields.String(allow_none=True, **kwargs)


class OutboundCallSchema(Document):
    """One call the broker made to EPM; the single call's document carries its (redacted) bodies."""

    sys_id = fields.String(metadata=SYS_ID)
    created_at = Utc()
    what = fields.String()
    method = fields.String()
    url = fields.String()
    path = fields.String()
    status = fields.Integer(allow_none=True, metadata={"description": "none when no answer came"})
    duration_ms = fields.Float()
    attempt = fields.Integer()
    error = _text()
    correlation_id = _text(metadata={"description": "x-correlation-id sent: the EPM RequestId of a decision call"})
    answered_correlation_id = _text(metadata={"description": "x-correlation-id EPM answered with, if any"})
    decision = fields.Function(lambda call: call.decision.sys_id if call.decision_id else None, allow_none=True,
                               metadata={"type": "string"})
    ticket = fields.Function(lambda call: call.decision.task.number if call.decision_id else None, allow_none=True,
                             metadata={"type": "string"})
    request_body = _text(metadata={"optional": True, "description": "secrets and tokens redacted"})
    response_body = _text(metadata={"optional": True, "description": "secrets and tokens redacted"})


class AppLogEntrySchema(Document):
    sys_id = fields.String(metadata=SYS_ID)
    created_at = Utc()
    level = fields.String()
    logger = fields.String()
    message = fields.String()
    request_id = _text()
    ticket = _text()
    exception = _text()


class HistoryEventSchema(Document):
    at = Utc()
    kind = fields.String()
    summary = fields.String()
    detail = fields.Dict()


class HistorySchema(Document):
    """A ticket's processing history, oldest step first."""

    ticket = fields.String()
    events = fields.List(fields.Nested(HistoryEventSchema))


class ReplayRequestSchema(RequestBody):
    dry_run = fields.Boolean(metadata={
        "default": False, "description": "report what a replay would do, change nothing"})


class ReplayResultSchema(Document):
    incoming_request = fields.String(metadata=SYS_ID)
    dry_run = fields.Boolean()
    result = fields.String(validate=validate.OneOf(replay.RESULTS))
    message = fields.String()
    changed = fields.Boolean()
    failed = fields.Boolean(metadata={"description": "its processing failed again, or the delivery is still not "
                                                     "valid (`result` failed or invalid)"})
    status = fields.String(validate=validate.OneOf(contract.INCOMING_STATUSES))
    ticket = _text()


# --- The dashboard (ops/dashboard.py): figures over the last `window_days` days -----------

DayCountSchema = Document.from_dict({
    "date": fields.Date(), "total": fields.Integer(),
    **{kind: fields.Integer() for kind in contract.KIND_LABELS}}, name="DayCountSchema")


class TimeToDecisionSchema(Document):
    decided_tickets = fields.Integer()
    median_seconds = fields.Raw(allow_none=True, metadata=NUMBER)
    p90_seconds = fields.Raw(allow_none=True, metadata=NUMBER)


class FailuresSchema(Document):
    incoming_errors = fields.Integer()
    decision_deliveries_failed = fields.Integer()
    decision_delivery_attempts_failed = fields.Integer()
    decisions_waiting = fields.Integer()
    webhook_authentication_failures = fields.Integer()
    last_webhook_authentication_failure = Utc(allow_none=True)


class DenialBurstSchema(Document):
    start = Utc()
    end = Utc()
    count = fields.Integer()
    deciders = fields.List(fields.String())


class AfterHoursTicketSchema(Document):
    ticket = fields.String()
    opened_at = Utc()
    requester = _text()
    kind = fields.String(validate=validate.OneOf(list(contract.KIND_LABELS)))
    subject = fields.String()


class AfterHoursSchema(Document):
    count = fields.Integer()
    business_hours_utc = fields.List(fields.Integer())
    latest = fields.List(fields.Nested(AfterHoursTicketSchema))


class WidelyRequestedSchema(Document):
    application = fields.String()
    requesters = fields.List(fields.String())
    requests = fields.Integer()
    start = Utc()
    end = Utc()
    tickets = fields.List(fields.String())


class FlagsSchema(Document):
    denial_bursts = fields.List(fields.Nested(DenialBurstSchema))
    after_hours_requests = fields.Nested(AfterHoursSchema)
    widely_requested_applications = fields.List(fields.Nested(WidelyRequestedSchema))


class DashboardSchema(Document):
    window_days = fields.Integer()
    since = Utc()
    now = Utc()
    requests_per_day = fields.List(fields.Nested(DayCountSchema))
    requests = fields.Nested(Document.from_dict({kind: fields.Integer() for kind in contract.KIND_LABELS},
                                                name="RequestCountSchema"))
    decisions = fields.Nested(Document.from_dict({"approved": fields.Integer(), "denied": fields.Integer()},
                                                 name="DecisionCountSchema"))
    time_to_decision = fields.Nested(TimeToDecisionSchema)
    failures = fields.Nested(FailuresSchema)
    flags = fields.Nested(FlagsSchema)
