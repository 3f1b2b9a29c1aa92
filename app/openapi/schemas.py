"""JSON Schemas (OpenAPI 3.1) of the JSON API's bodies and answers.

The query parameters come from the views' own marshmallow schemas (app/openapi/spec.py);
what is here describes documents the views build by hand and the bodies they read.
Each schema says exactly what the broker accepts: schemathesis
(tests/security/test_security_openapi.py) sends data inside and outside of it and fails
when an answer disagrees.
"""
from app import contract
from app.intake.schemas import MAX_REQUEST_ID_LENGTH

# A ticket API time: naive UTC in ISO 8601, microseconds when there are any (no offset).
NAIVE_UTC = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$",
             "description": "UTC, ISO 8601 without an offset"}
OPTIONAL_NAIVE_UTC = {**NAIVE_UTC, "type": ["string", "null"]}
# An operations API time: ISO 8601 with Z.
UTC = {"type": "string", "format": "date-time"}
OPTIONAL_UTC = {"type": ["string", "null"], "format": "date-time"}
TEXT = {"type": "string"}
OPTIONAL_TEXT = {"type": ["string", "null"]}
SYS_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
# No NUL (PostgreSQL refuses it): what a query, a path or a body's text may not hold.
NO_NUL = {"not": {"type": "string", "pattern": r"\x00"}}
# Something worth reading: not empty, not only white space.
NOT_BLANK = {"type": "string", "pattern": r"\S", **NO_NUL}


def envelope(result):
    """ServiceNow's answer shape: `{"result": ...}`."""
    return {"type": "object", "required": ["result"], "properties": {"result": result}}


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


# --- Errors ----------------------------------------------------------------------

ERROR = {
    "type": "object",
    "required": ["error", "status"],
    "properties": {
        "error": {"type": "object", "required": ["message"], "properties": {
            "message": TEXT, "detail": OPTIONAL_TEXT}},
        "status": {"const": "failure"},
        "fields": {"type": "object", "description": "the fields that are wrong, with what is wrong with each"},
        "incoming_request": {**SYS_ID, "description": "the stored record of a refused delivery"},
        "retry_after": {"type": "integer", "minimum": 1},
    },
}

# --- EPM's webhook deliveries (contract/epm.md §1) ----------------------------------

EPM_MAX_TEXT = 4000
# A value EPM fills in from a template: text (numbers and true/false are read as text),
# or nothing. Empty text and an unfilled `%%placeholder%%` count as nothing.
EPM_VALUE = {"type": ["string", "number", "boolean", "null"], "maxLength": EPM_MAX_TEXT}
EPM_TIMESTAMP = {**EPM_VALUE, "description": "ISO 8601; a time that cannot be read is kept in the raw body only"}
_PLACEHOLDER = r"^\s*%%[^%]*%%\s*$"
REQUEST_ID = {
    "type": ["string", "number", "boolean"], "maxLength": MAX_REQUEST_ID_LENGTH, "pattern": r"\S",
    "not": {"type": "string", "pattern": _PLACEHOLDER},
    "description": "EPM's request GUID: one ticket per RequestId and kind of request",
}


def _event(event, fields, request_info=None, description=""):
    properties = {
        "EventType": {"const": event.name},
        "RequestId": REQUEST_ID,
        "TenantId": EPM_VALUE,
        "Timestamp": EPM_TIMESTAMP,
        "TicketNumber": EPM_VALUE,
    }
    properties.update(fields)
    if request_info is not None:
        properties["requestInfo"] = {"type": "object", "properties": request_info}
    return {"type": "object", "title": event.name, "description": description, "required": ["EventType", "RequestId"],
            "properties": properties}


_DECISION_FIELDS = {"Decision": EPM_VALUE, "DecisionTime": EPM_TIMESTAMP, "DecisionPerformedByUser": EPM_VALUE,
                    "Duration": EPM_VALUE}

EPM_EVENT = {
    "description": "One of EPM's four events. Keys match without regard to case; keys not listed here are "
                   "kept with the delivery; a repeated key keeps its first filled value.",
    "oneOf": [
        _event(contract.URM_TICKET_CREATED, {}, {key: EPM_VALUE for key in contract.URM_REQUEST_INFO_KEYS},
               "Application Access requested: creates a ticket"),
        _event(contract.URM_DECISION_UPDATE, {}, _DECISION_FIELDS,
               "Application Access decided in EPM: finalizes the ticket"),
        _event(contract.ADMIN_TICKET_CREATED, {
            name: EPM_VALUE for name in ("ComputerId", "GroupId", "Reason", "UserId", "UserName", "DurationRequested")
        }, description="Admin Access requested: creates a ticket"),
        _event(contract.ADMIN_TICKET_UPDATED, {
            "StartTime": EPM_TIMESTAMP, "EndTime": EPM_TIMESTAMP, "DurationRequested": EPM_VALUE, **_DECISION_FIELDS,
        }, description="Admin Access decided in EPM: finalizes the ticket"),
    ],
}

DELIVERY_RESULT = envelope({
    "type": "object", "required": ["incoming_request", "status", "ticket"],
    "properties": {
        "incoming_request": SYS_ID,
        "status": {"enum": list(contract.INCOMING_STATUSES)},
        "ticket": {**OPTIONAL_TEXT, "description": "none while an update waits for its created event"},
    },
})

# --- Tickets -------------------------------------------------------------------------

_TICKET_TEXT = ("sys_id", "number", "table", "ticket_type", "state", "kind", "kind_label", "request_id",
                "short_description", "assignment_group", "category", "subject")
_TICKET_OPTIONAL_TEXT = ("requester", "host", "publisher", "requested_duration")

TICKET_SUMMARY = {
    "type": "object",
    "required": [*_TICKET_TEXT, *_TICKET_OPTIONAL_TEXT, "state_value", "opened_at", "updated_at", "closed_at"],
    "properties": {
        **{name: TEXT for name in _TICKET_TEXT},
        **{name: OPTIONAL_TEXT for name in _TICKET_OPTIONAL_TEXT},
        "sys_id": SYS_ID,
        "table": {"enum": list(contract.TICKET_TYPES)},
        "kind": {"enum": list(contract.KIND_LABELS)},
        "kind_label": {"enum": list(contract.KIND_LABELS.values())},
        "state_value": {"type": "integer"},
        "opened_at": NAIVE_UTC, "updated_at": NAIVE_UTC, "closed_at": OPTIONAL_NAIVE_UTC,
    },
}

WORK_NOTE = {
    "type": "object", "required": ["author", "text", "system", "created_at"],
    "properties": {"author": TEXT, "text": TEXT, "system": {"type": "boolean"}, "created_at": NAIVE_UTC},
}

TICKET = {
    "allOf": [ref("TicketSummary")],
    "type": "object",
    "required": ["details", "epm_decision", "work_notes"],
    "properties": {
        "details": {
            "type": "object",
            "description": "everything EPM sent: `request_info` for Application Access, the admin fields otherwise",
            "required": ["tenant_id", "epm_ticket_number", "requested_at", "reason"],
            "properties": {
                "tenant_id": OPTIONAL_TEXT, "epm_ticket_number": OPTIONAL_TEXT, "requested_at": OPTIONAL_NAIVE_UTC,
                "reason": OPTIONAL_TEXT, "request_info": {"type": "object"},
                **{name: OPTIONAL_TEXT for name in ("computer_id", "group_id", "user_id", "user_name",
                                                    "duration_requested")},
            },
        },
        "epm_decision": {
            "type": "object", "description": "the decision as EPM finalized it (empty until then)",
            "required": ["final"],
            "properties": {
                "decision": OPTIONAL_TEXT, "performed_by": OPTIONAL_TEXT, "duration": OPTIONAL_TEXT,
                "decision_time": OPTIONAL_NAIVE_UTC, "start_time": OPTIONAL_NAIVE_UTC, "end_time": OPTIONAL_NAIVE_UTC,
                "final": {"type": "boolean"},
            },
        },
        "work_notes": {"type": "array", "items": ref("WorkNote")},
    },
}

TICKET_CHANGE = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {
        "state": {"enum": sorted({text for ticket_type in contract.TICKET_TYPES.values()
                                  for value, label in ticket_type.states for text in (label, str(value))}),
                  "description": "a state of the ticket's own type, by label or number (409 for another type's)"},
        "work_note": {**NOT_BLANK, "maxLength": 4000},
    },
}

# --- Decisions -------------------------------------------------------------------------

_REASON = {**NOT_BLANK, "description": "why; shown to EPM and in the audit log"}
# Whole minutes 5-1440 or hours 1-24, as a number or as digits.
_DURATIONS = {
    contract.DURATION_MINUTES: {"anyOf": [
        {"type": "integer", "minimum": 5, "maximum": 1440},
        {"type": "string", "pattern": r"^0*([5-9]|[1-9][0-9]|[1-9][0-9]{2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)$"},
    ]},
    contract.DURATION_HOURS: {"anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 24},
        {"type": "string", "pattern": r"^0*([1-9]|1[0-9]|2[0-4])$"},
    ]},
}


def _approval(unit, value=None):
    properties = {"decision": {"const": contract.DECISION_APPROVED}, "reason": _REASON, "duration_unit": {"const": unit}}
    required = ["decision", "reason", "duration_unit"]
    if value is not None:
        properties["duration_value"] = value
        required.append("duration_value")
    return {"type": "object", "title": f"Approved ({unit})", "required": required, "properties": properties}


DECISION_REQUEST = {
    "description": "A denial, or an approval for once or for a number of minutes or hours",
    "oneOf": [
        {"type": "object", "title": "Denied", "required": ["decision", "reason"], "properties": {
            "decision": {"const": contract.DECISION_DENIED}, "reason": _REASON,
            "duration_unit": {**OPTIONAL_TEXT, **NO_NUL}}},
        _approval(contract.DURATION_ONCE),
        *(_approval(unit, value) for unit, value in _DURATIONS.items()),
    ],
}

DECISION = {
    "type": "object",
    "required": ["sys_id", "decision", "reason", "duration_unit", "duration_value", "duration_sent", "decided_by",
                 "decided_at", "delivery_status", "attempts", "last_error", "delivered_at"],
    "properties": {
        "sys_id": SYS_ID, "decision": {"enum": list(contract.DECISIONS)}, "reason": TEXT,
        "duration_unit": {"type": ["string", "null"], "enum": [contract.DURATION_ONCE, *contract.DURATION_LIMITS, None]},
        "duration_value": {"type": ["integer", "null"]}, "duration_sent": OPTIONAL_TEXT, "decided_by": TEXT,
        "decided_at": NAIVE_UTC, "delivery_status": {"enum": list(contract.DELIVERY_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0}, "last_error": OPTIONAL_TEXT, "delivered_at": OPTIONAL_NAIVE_UTC,
    },
}

DECISION_RESULT = envelope({
    "type": "object", "required": ["ticket"],
    "properties": {
        "ticket": ref("Ticket"),
        "decision": ref("Decision"),
        "pending_approval": {
            "type": "object", "description": "a first approval, waiting for a second approver",
            "required": ["approver", "reason", "approvals_required", "created_at"],
            "properties": {"approver": TEXT, "reason": TEXT, "approvals_required": {"const": 2},
                           "created_at": NAIVE_UTC},
        },
    },
    "oneOf": [{"required": ["decision"]}, {"required": ["pending_approval"]}],
})

HISTORY = envelope({
    "type": "object", "required": ["ticket", "events"],
    "properties": {
        "ticket": TEXT,
        "events": {"type": "array", "items": {
            "type": "object", "required": ["at", "kind", "summary", "detail"],
            "properties": {"at": UTC, "kind": TEXT, "summary": TEXT, "detail": {"type": "object"}}}},
    },
})

# --- Deliveries and operations ------------------------------------------------------------

INCOMING_REQUEST = {
    "type": "object",
    "required": ["sys_id", "status", "event_type", "request_id", "ticket", "received_at", "processed_at", "error",
                 "content_type", "source_address"],
    "properties": {
        "sys_id": SYS_ID, "status": {"enum": list(contract.INCOMING_STATUSES)}, "event_type": OPTIONAL_TEXT,
        "request_id": OPTIONAL_TEXT, "ticket": OPTIONAL_TEXT, "error": OPTIONAL_TEXT, "content_type": OPTIONAL_TEXT,
        "source_address": OPTIONAL_TEXT,
        "headers": {"type": "object", "description": "the delivery's kept headers (never its credentials)"},
        "body": {**OPTIONAL_TEXT, "description": "the body as received; none when it was over the size limit"},
    },
}
# The older list under the API prefix: the same record with naive times and the body.
INCOMING_REQUEST_WITH_BODY = {
    **INCOMING_REQUEST,
    "required": [*INCOMING_REQUEST["required"], "body"],
    "properties": {**INCOMING_REQUEST["properties"], "received_at": NAIVE_UTC, "processed_at": OPTIONAL_NAIVE_UTC},
}
INCOMING_REQUEST_OPS = {
    **INCOMING_REQUEST,
    "properties": {**INCOMING_REQUEST["properties"], "received_at": UTC, "processed_at": OPTIONAL_UTC},
}

REPLAY_REQUEST = {"type": "object", "properties": {
    "dry_run": {"type": "boolean", "default": False, "description": "report what a replay would do, change nothing"}}}

REPLAY_RESULT = envelope({
    "type": "object",
    "required": ["incoming_request", "dry_run", "result", "message", "changed", "status", "ticket"],
    "properties": {
        "incoming_request": SYS_ID, "dry_run": {"type": "boolean"},
        "result": {"enum": ["created", "finalized", "duplicate", "waiting", "invalid", "failed"]},
        "message": TEXT, "changed": {"type": "boolean"}, "status": {"enum": list(contract.INCOMING_STATUSES)},
        "ticket": OPTIONAL_TEXT,
    },
})

OUTBOUND_CALL = {
    "type": "object",
    "required": ["sys_id", "created_at", "what", "method", "url", "path", "status", "duration_ms", "attempt", "error",
                 "decision", "ticket"],
    "properties": {
        "sys_id": SYS_ID, "created_at": UTC, "what": TEXT, "method": TEXT, "url": TEXT, "path": TEXT,
        "status": {"type": ["integer", "null"], "description": "none when no answer came"},
        "duration_ms": {"type": "number"}, "attempt": {"type": "integer"}, "error": OPTIONAL_TEXT,
        "decision": {"type": ["string", "null"]}, "ticket": OPTIONAL_TEXT,
        "request_body": {**OPTIONAL_TEXT, "description": "secrets and tokens redacted"},
        "response_body": {**OPTIONAL_TEXT, "description": "secrets and tokens redacted"},
    },
}

APP_LOG_ENTRY = {
    "type": "object",
    "required": ["sys_id", "created_at", "level", "logger", "message", "request_id", "ticket", "exception"],
    "properties": {
        "sys_id": SYS_ID, "created_at": UTC, "level": TEXT, "logger": TEXT, "message": TEXT,
        "request_id": OPTIONAL_TEXT, "ticket": OPTIONAL_TEXT, "exception": OPTIONAL_TEXT,
    },
}

DASHBOARD = envelope({
    "type": "object",
    "description": "the figures of the operations dashboard over the last `window_days` days",
    "required": ["window_days", "since", "now", "requests_per_day", "requests", "decisions", "time_to_decision",
                 "failures", "flags"],
    "properties": {
        "window_days": {"type": "integer"}, "since": UTC, "now": UTC,
        "requests_per_day": {"type": "array", "items": {
            "type": "object", "required": ["date", *contract.KIND_LABELS],
            "properties": {"date": {"type": "string", "format": "date"},
                           **{kind: {"type": "integer"} for kind in contract.KIND_LABELS}}}},
        "requests": {"type": "object", "required": list(contract.KIND_LABELS),
                     "additionalProperties": {"type": "integer"}},
        "decisions": {"type": "object", "required": ["approved", "denied"],
                      "additionalProperties": {"type": "integer"}},
        "time_to_decision": {"type": "object"},
        "failures": {"type": "object"},
        "flags": {"type": "object", "required": ["denial_bursts", "after_hours_requests",
                                                  "widely_requested_applications"]},
    },
})

AUDIT_ENTRY = {
    "type": "object",
    "required": ["id", "sys_id", "created_at", "actor", "action", "object_type", "object_id", "source_address",
                 "detail", "previous_hash", "entry_hash"],
    "properties": {
        "id": {"type": "integer"}, "sys_id": SYS_ID, "created_at": UTC, "actor": TEXT, "action": TEXT,
        "object_type": TEXT, "object_id": TEXT, "source_address": OPTIONAL_TEXT, "detail": {"type": "object"},
        "previous_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "entry_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

# --- ServiceNow's Table API subset --------------------------------------------------------

TABLE_RECORD = {
    "type": "object",
    "description": "the fields asked for in `sysparm_fields` (all by default), as values, display values, or both",
    "additionalProperties": {"anyOf": [
        TEXT,
        {"type": "object", "required": ["value", "display_value"],
         "properties": {"value": TEXT, "display_value": TEXT}},
    ]},
}

COMPONENTS = {
    "Error": ERROR,
    "EpmEvent": EPM_EVENT,
    "TicketSummary": TICKET_SUMMARY,
    "Ticket": TICKET,
    "WorkNote": WORK_NOTE,
    "TicketChange": TICKET_CHANGE,
    "DecisionRequest": DECISION_REQUEST,
    "Decision": DECISION,
    "IncomingRequest": INCOMING_REQUEST_OPS,
    "OutboundCall": OUTBOUND_CALL,
    "AppLogEntry": APP_LOG_ENTRY,
    "AuditEntry": AUDIT_ENTRY,
    "TableRecord": TABLE_RECORD,
}
