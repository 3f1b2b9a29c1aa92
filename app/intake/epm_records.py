"""EPM's API records (contract/epm.md §5, read by app/epm/records.py) as the update webhooks EPM would have sent,
so a decision read from EPM rather than received is recorded by the intake's schema and the ticket service,
as reconciliation, "Check with EPM" and a decision EPM had already taken otherwise need."""
from app import contract
from app.epm import records
from app.intake.schemas import load_event
from app.tickets import service as tickets

UPDATE_EVENT = {contract.KIND_APPLICATION: contract.URM_DECISION_UPDATE, contract.KIND_ADMIN:
                contract.ADMIN_TICKET_UPDATED}


def as_text(document):
    """Every scalar as text, as EPM's webhooks send them; objects read the same way, arrays kept, no value left out."""
    result = {}
    for key, value in document.items():
        if isinstance(value, dict):
            result[key] = as_text(value)
        elif isinstance(value, list):
            result[key] = value
        elif records.text(value) is not None:
            result[key] = records.text(value)
    return result


def _update_document(record, request_id):
    """The update webhook EPM would have sent for the decision its record shows."""
    decided = {"Decision": record.decision, "DecisionTime": record.decision_time,
               "DecisionPerformedByUser": record.decided_by, "Duration": record.duration}
    common = {"EventType": UPDATE_EVENT[record.kind].name, "RequestId": request_id,
              "TicketNumber": record.epm_ticket_number}
    if record.kind == contract.KIND_APPLICATION:
        return {**common, "requestInfo": decided}
    return {**common, **decided, "StartTime": record.start_time, "EndTime": record.end_time,
            "DurationRequested": record.duration_requested}


def decision_event(record, request_id):
    """(event, fields) of the update webhook for the final decision `record` shows, or None while EPM shows
    none; ValidationError when the record's values are unusable."""
    if record.decision is None:
        return None
    return load_event(as_text(_update_document(record, request_id)))


def finalize_from_record(jit, update, record, when):
    """Keep EPM's `record` (read at `when`) on the ticket and apply `update` (decision_event) as the lost update
    webhook would have: a first final decision, a later state (an Admin Access approval revoked or ended early,
    a conflict), or an older one telling what the later state was (the approval after its revocation: Revoked).
    Returns tickets.UPDATE_FIRST, UPDATE_NEWER, UPDATE_OLDER or UPDATE_CONFLICT when the ticket changed, else
    None: a record showing the state the ticket holds, or an older one telling nothing new, changes nothing
    however often it is read (tickets.later_effect).
    The caller holds the write transaction and the RequestId's lock (app.claims.lock_request)."""
    jit.epm_record, jit.epm_checked_at = record.raw, when
    jit.save(only=[type(jit).epm_record, type(jit).epm_checked_at])
    if update is None:
        return None
    if jit.decision_final and tickets.later_effect(jit, *update) is None:
        return None
    effect = tickets.record_update(jit, *update)[1]
    return effect if effect in (tickets.UPDATE_FIRST, tickets.UPDATE_NEWER, tickets.UPDATE_OLDER,
                                tickets.UPDATE_CONFLICT) else None
