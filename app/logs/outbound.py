"""Recording every HTTP attempt the EPM client makes, as an OutboundCall row.

The EPM client reports each attempt (token or API, bodies already redacted) to its
`on_call` callback; `outbound_call_recorder` gives it one that stores the attempt in
its own short transaction. A caller that is itself inside a transaction gets the row
written by the log store's listener instead, so the record neither waits on nor
disappears with the caller's transaction.
"""
import logging

from app import contract
from app.db import database, write_transaction
from app.logs import store
from app.logs.models import OutboundCall
from app.logs.redaction import redact, truncate
from app.models import new_sys_id, utcnow

log = logging.getLogger(__name__)

BODY_LIMIT = 20_000
# A foreign answer is kept only as a short excerpt: enough to tell what went wrong, too little to make
# the log a way of reading whatever a misdirected URL answers.
RESPONSE_EXCERPT = 300

TOKEN = "token"
APPLICATION_DECISION = "application decision"
ADMIN_DECISION = "admin decision"
PURPOSES = (TOKEN, APPLICATION_DECISION, ADMIN_DECISION, "application request list", "admin request list",
            "application request", "admin request", "other")


def call_purpose(path, configuration=None):
    """What an EPM call at `path` was for, named as the outbound-call log shows it."""
    def configured(name, default):
        return (getattr(configuration, name, None) or default) if configuration is not None else default

    named = {
        configured("token_path", contract.EPM_TOKEN_PATH): TOKEN,
        configured("application_decision_path", contract.EPM_APPLICATION_DECISION_PATH): APPLICATION_DECISION,
        configured("admin_decision_path", contract.EPM_ADMIN_DECISION_PATH): ADMIN_DECISION,
        contract.EPM_APPLICATION_LIST_PATH: "application request list",
        contract.EPM_ADMIN_LIST_PATH: "admin request list",
    }
    path = (path or "").split("?")[0]
    if path in named:
        return named[path]
    for list_path, kind in ((contract.EPM_APPLICATION_LIST_PATH, "application"),
                            (contract.EPM_ADMIN_LIST_PATH, "admin")):
        if path.startswith(list_path + "/"):
            return f"{kind} request"
    return "other"


def call_row(call, what, decision=None):
    """The OutboundCall columns for one `on_call` report."""
    return {
        "sys_id": new_sys_id(),
        "method": str(call.get("method") or "")[:8],
        "url": str(call.get("url") or ""),
        "path": str(call.get("path") or "")[:500],
        "status": call.get("status"),
        "duration_ms": float(call.get("duration_ms") or 0.0),
        "attempt": int(call.get("attempt") or 1),
        "what": what[:64],
        # The client redacts already; masking again costs little and protects against a
        # client that forgets to.
        "request_body": truncate(redact(call.get("request_body")), BODY_LIMIT) if call.get("request_body") else None,
        "response_body": (truncate(redact(call.get("response_body")), RESPONSE_EXCERPT)
                          if call.get("response_body") else None),
        "error": call.get("error"),
        "correlation_id": str(call.get("correlation_id") or "")[:128] or None,
        "answered_correlation_id": str(call.get("answered_correlation_id") or "")[:128] or None,
        "decision": getattr(decision, "id", decision),
        "created_at": utcnow(),
    }


def store_outbound_call(call, what, decision=None):
    """Store one attempt; returns nothing and never raises (a call log must not break a delivery)."""
    try:
        row = call_row(call, what, decision)
        if database.in_transaction():
            store.submit(OutboundCall, row)
            return
        opened_here = database.is_closed()
        try:
            with write_transaction():
                OutboundCall.insert(row).execute()
        finally:
            if opened_here and not database.is_closed():
                database.close()
    except Exception:  # noqa: BLE001
        log.exception("could not record the EPM call %s %s", call.get("method"), call.get("path"))


def outbound_call_recorder(configuration=None, decision=None):
    """An `on_call` callback for EpmClient that stores each attempt, linked to `decision` if given."""

    def record(call):
        store_outbound_call(call, call_purpose(call.get("path"), configuration), decision)

    return record
