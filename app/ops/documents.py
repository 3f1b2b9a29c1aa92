"""The operations records as JSON documents (the API) and as what the pages display."""
import json


def _iso(moment):
    return f"{moment.isoformat()}Z" if moment else None


def pretty_body(text):
    """A JSON body indented for reading; other text as it is (templates escape either)."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def incoming_document(incoming, with_body=False):
    document = {
        "sys_id": incoming.sys_id,
        "status": incoming.status,
        "event_type": incoming.event_type,
        "request_id": incoming.request_id,
        "ticket": incoming.task.number if incoming.task_id else None,
        "received_at": _iso(incoming.received_at),
        "processed_at": _iso(incoming.processed_at),
        "error": incoming.error,
        "content_type": incoming.content_type,
        "source_address": incoming.source_address,
    }
    if with_body:
        document["headers"] = incoming.headers
        document["body"] = incoming.body_text
    return document


def outbound_document(call, with_bodies=False):
    decision = call.decision if call.decision_id else None
    document = {
        "sys_id": call.sys_id,
        "created_at": _iso(call.created_at),
        "what": call.what,
        "method": call.method,
        "url": call.url,
        "path": call.path,
        "status": call.status,
        "duration_ms": call.duration_ms,
        "attempt": call.attempt,
        "error": call.error,
        "decision": decision.sys_id if decision is not None else None,
        "ticket": decision.task.number if decision is not None else None,
    }
    if with_bodies:
        document["request_body"] = call.request_body
        document["response_body"] = call.response_body
    return document


def app_log_document(entry):
    return {
        "sys_id": entry.sys_id,
        "created_at": _iso(entry.created_at),
        "level": entry.level,
        "logger": entry.logger,
        "message": entry.message,
        "request_id": entry.request_id,
        "ticket": entry.ticket,
        "exception": entry.exception,
    }
