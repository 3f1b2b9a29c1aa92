"""Delivering decisions to EPM from the outbox: exactly once, retried through outages.

Each attempt is claimed (app/claims.py) and carries the decision's sys_id as its idempotency key,
so a re-send after a lost answer cannot apply twice in EPM."""
import dataclasses
import logging
from datetime import timedelta

import peewee
from flask import current_app
from marshmallow import ValidationError

from app import claims, contract, events
from app.audit import service as audit
from app.db import update_row_unread, write_transaction
from app.epm import records
from app.epm.client import EpmClient
from app.epm.errors import EpmConflictUnresolved, EpmDecidedOtherwise, EpmError
from app.epm.payloads import admin_decision_body, application_decision_body
from app.intake.epm_records import decision_event, finalize_from_record
from app.intake.schemas import storable
from app.logs import outbound
from app.logs.models import OutboundCall
from app.logs.setup import log_context
from app.models import Configuration, Decision, JIT_MODELS, Task, utcnow
from app.tickets import outcome as ticket_outcome, service as tickets
from app.tickets.documents import ticket_url

log = logging.getLogger(__name__)

AUDIT_NOT_APPLIED = "decision_not_applied"


def _settings():
    return current_app.extensions["settings"]


def _claim_seconds():
    # Worst case: waiting out another process's token claim (time-out + 2 s), a token request,
    # the call, a 401, a new token and the call again: five time-outs and change.
    return _settings().epm_timeout_seconds * 6 + 5


def first_claim():
    """The columns of a decision that its creator claims for the first attempt (see deliver_claimed)."""
    return {"status": contract.DELIVERY_SENDING, "attempts": 1,
            "claimed_until": utcnow() + timedelta(seconds=_claim_seconds())}


def retry_delay(attempts, retry_after=None):
    """Seconds until the next attempt: the configured schedule with ±20% jitter, or EPM's Retry-After when
    longer (app/claims.py)."""
    return claims.retry_delay(_settings().retry_delays, attempts, retry_after)


def request_body(decision, configuration, jit=None):
    """The JSON EPM receives for `decision` (contract/epm.md §3); `jit` is its task's jit_request if at hand.

    The ticket link is made from the settings at each attempt (ticket_url), never taken from the stored
    decision, whose link an older version may have made from the deciding request's Host header."""
    task = decision.task
    jit = jit or task.jit_request
    common = dict(
        decision=decision.decision, performed_by=decision.decided_by, request_id=jit.request_id,
        decision_time=decision.decided_at, reason=decision.reason, sys_id=task.sys_id,
        ticket_number=task.number, ticket_url=ticket_url(task),
    )
    if task.kind == contract.KIND_APPLICATION:
        return application_decision_body(duration=decision.duration_sent or contract.EPM_DURATION_ONCE, **common)
    return admin_decision_body(duration=decision.duration_sent, once_duration=configuration.admin_once_duration,
                               **common)


def _send(decision, configuration, jit, on_call):
    client = EpmClient.from_configuration(configuration, on_call=on_call, timeout=_settings().epm_timeout_seconds)
    body = request_body(decision, configuration, jit)
    with log_context(ticket=decision.task.number):
        if decision.task.kind == contract.KIND_APPLICATION:
            return client.send_application_decision(body, decision.sys_id)
        return client.send_admin_decision(body, decision.sys_id)


def deliver_decision(decision):
    """Make one delivery attempt if the decision is due and unclaimed; returns it re-read."""
    claimed = claims.claim_attempt(Decision, decision.id, _claim_seconds())
    if claimed is None:
        return Decision.get_by_id(decision.id)
    return deliver_claimed(claimed)


def deliver_claimed(decision, configuration=None, jit=None):
    """Make the attempt this process claimed `decision` for; returns the decision as now stored."""
    configuration = configuration or Configuration.default()
    calls = []

    def record_call(call):
        calls.append(outbound.call_row(call, outbound.call_purpose(call.get("path"), configuration), decision))

    # A JIT record given was read in the decision's own transaction, which found it not final: only an attempt
    # after it (a retry, the outbox) may find EPM's own decision come in meanwhile.
    if jit is None and _settled_by_epm(decision):
        return Decision.get_by_id(decision.id)
    try:
        _send(decision, configuration, jit, record_call)
    except EpmDecidedOtherwise as error:
        _record_decided_otherwise(decision, error, calls)
    except EpmConflictUnresolved as error:
        conflicts = decision.unresolved_conflicts + 1
        message, retryable = _unresolved_outcome(error, conflicts)
        _record_failure(decision, message, error.status, retryable, error.retry_after, calls, conflicts=conflicts)
    except EpmError as error:
        _record_failure(decision, str(error), error.status, error.retryable, error.retry_after, calls)
    except ValueError as error:
        # The EPM connection is not configured (yet): keep the decision until it is.
        _record_failure(decision, f"The EPM connection is not usable: {error}", None, True, None, calls)
    except BaseException:
        # Unexpected: the claim runs out and a later attempt re-sends; keep the calls made.
        _store_calls_alone(calls)
        raise
    else:
        if _record_success(decision, calls):
            return decision
    return Decision.get_by_id(decision.id)


def _unresolved_outcome(error, conflicts):
    """(message, retryable) of the `conflicts`-th attempt EPM answered 409 while its record did not tell whether
    the decision was applied (EpmConflictUnresolved): it showed the request pending though the 409 said it was
    already decided, EPM did not know the request, or the record's status maps to no decision. A record lagging
    EPM's answer catches up within minutes; one still telling nothing after every step of `[epm] retry_schedule`
    (where a 5xx outage is alerted) will not, and retrying at the last interval would go on for ever: the
    decision is given up, a failed send with its alert, and the ticket can be decided again.

    Only such attempts count (Decision.unresolved_conflicts), each waiting its step of the schedule: attempts an
    outage failed before them would otherwise use up the bound, and the record would get no time at all."""
    if conflicts < len(_settings().retry_delays):
        return error.message, True
    return (f"{error.message}. {error.still} after {conflicts} attempts (every step of "
            "[epm] retry_schedule): given up"), False


def _store_calls(calls):
    """Store an attempt's calls inside the caller's transaction; a call log that cannot be
    written is given up (its savepoint rolled back), never the outcome it belongs to."""
    if not calls:
        return
    try:
        with write_transaction():  # nested: a savepoint
            OutboundCall.insert_many(calls).execute()
    except peewee.DatabaseError:
        log.exception("could not record %s EPM call(s) of a decision's delivery", len(calls))


def _store_calls_alone(calls):
    for row in calls:
        try:
            with write_transaction():
                OutboundCall.insert(row).execute()
        except Exception:  # noqa: BLE001 - a call log must not hide the error being raised
            log.exception("could not record the EPM call %s %s", row.get("method"), row.get("path"))


def _still_claimed(decision, **values):
    """Store an attempt's outcome `values` on `decision` only while it is still the attempt this process claimed
    (sending, and no later attempt claimed it since); True if stored.

    An attempt that outlives its claim (_claim_seconds) may find the decision settled meanwhile: delivered by
    another process's attempt, or by EPM's own final decision (settle_open_decisions). Its late answer must not
    queue the decision again, nor undo that settlement; it is dropped with a log line. Stored, the claim ends."""
    stored = claims.release_attempt(Decision, decision, **values)
    if not stored:
        log.info("decision %s on ticket %s was settled meanwhile: the outcome of its attempt %s is dropped",
                 decision.sys_id, decision.task.number, decision.attempts)
    return stored


def _record_success(decision, calls):
    """Mark `decision` delivered (in the database and on the object) with the calls that delivered it, and tell
    who waits for the request to settle (events.decision_delivered) in that transaction; False when it was settled
    meanwhile (_still_claimed)."""
    now = utcnow()
    with write_transaction():
        _store_calls(calls)
        if not _still_claimed(decision, status=contract.DELIVERY_DELIVERED, delivered_at=now, last_status=200,
                              last_error=None):
            return False
        ticket_outcome.refresh(decision.task)
        tickets.add_work_note(decision.task, f"Decision sent to EPM and acknowledged "
                                             f"(attempt {decision.attempts}). It is now final.")
        decision.status, decision.delivered_at, decision.claimed_until = contract.DELIVERY_DELIVERED, now, None
        decision.last_status, decision.last_error = 200, None
        events.decision_delivered.send(decision)
    return True


def _record_failure(decision, message, status, retryable, retry_after, calls=(), conflicts=None):
    """Store a failed attempt: pending again (`retryable`), or failed for good with its alert. `conflicts`: the
    count of unresolved 409s (_unresolved_outcome) this attempt makes, which also sets its step of the schedule."""
    log.warning("delivery of decision %s to EPM failed (attempt %s): %s", decision.sys_id, decision.attempts, message)
    counted = {} if conflicts is None else {"unresolved_conflicts": conflicts}
    with write_transaction():
        _store_calls(list(calls))
        if retryable:
            # Pending again: the ticket's outcome still reads "<decision> - sending to EPM", nothing to keep.
            next_at = utcnow() + timedelta(seconds=retry_delay(conflicts or decision.attempts, retry_after))
            if not _still_claimed(decision, status=contract.DELIVERY_PENDING, next_attempt_at=next_at,
                                  last_status=status, last_error=message[:2000], **counted):
                return
            if decision.attempts == 1:
                tickets.add_work_note(decision.task, f"Delivery to EPM failed: {message}. "
                                                     "It will be retried automatically.")
        else:
            if not _still_claimed(decision, status=contract.DELIVERY_FAILED, last_status=status,
                                  last_error=message[:2000], **counted):
                return
            ticket_outcome.refresh(decision.task)
            # The ticket reads as undecided again (its Table API `approval`): a client syncing by sys_updated_on
            # must see it move.
            update_row_unread(Task, decision.task_id, updated_at=utcnow())
            tickets.add_work_note(decision.task, f"Delivery to EPM failed permanently: {message}. "
                                                 "The ticket can be decided again.")
            events.decision_delivery_failed.send(decision)


def _not_open(decision_id):
    """Settled meanwhile: delivered or failed (each process settles a decision once)."""
    return Decision.select().where(Decision.id == decision_id,
                                   Decision.status.in_((contract.DELIVERY_DELIVERED, contract.DELIVERY_FAILED)))


def _settled_by_epm(decision):
    """True when EPM's final decision on the request came in while `decision` waited (EPM's update webhook,
    reconciliation): `decision`, claimed for this attempt, is then settled by it (settle_by_epm) instead of sent.
    Re-sending would post an approval after EPM's denial, or the same decision again, and retry it for ever
    should EPM answer 5xx."""
    task = decision.task
    model = JIT_MODELS[task.kind]
    # Two reads on purpose: this unlocked one spares the common attempt (the request not final) the write
    # transaction and the RequestId's lock; the one under the lock reads the EPM decision to settle by, which
    # a later update (a revocation) may have changed since.
    if not model.select().where(model.task == task.id, model.decision_final == True).exists():  # noqa: E712
        return False
    with write_transaction():
        claims.lock_request(task.request_id)
        jit = model.get(model.task == task.id)
        if not _not_open(decision.id).exists():
            settle_by_epm(jit, Decision.get_by_id(decision.id))
    return True


def settle_open_decisions(jit):
    """Settle every decision on `jit`'s ticket still waiting to be sent by EPM's final decision just recorded on
    `jit` (events.epm_decision_final, in that transaction, under the RequestId's lock). A decision whose attempt
    is under way (claimed) is left to that attempt: whatever EPM answers, its next one finds the request final.
    A record read knowing no decision waits (tickets.find_jit_request's `waiting_decision`) costs no query."""
    if getattr(jit, "waiting_decision", True) is None:
        return
    now = claims.database_now()
    waiting = Decision.select().where(
        Decision.task == jit.task_id,
        (Decision.status == contract.DELIVERY_PENDING)
        | ((Decision.status == contract.DELIVERY_SENDING) & (Decision.claimed_until < now)))
    for decision in list(waiting):
        settle_by_epm(jit, decision)


def settle_by_epm(jit, decision):
    """Settle `decision`, not acknowledged yet, by EPM's final decision on `jit`, in the caller's transaction:
    the same decision is acknowledged by it (delivered: EPM applied it, its answer was lost or is still to come);
    another one was not applied, as after a 409 whose record shows it (_record_decided_otherwise). Nothing is
    sent to EPM either way."""
    task, final = decision.task, jit.final_decision or ""
    by = f" by {jit.final_decision_by}" if jit.final_decision_by else ""
    if final.casefold() == (decision.decision or "").casefold():
        Decision.update(status=contract.DELIVERY_DELIVERED, delivered_at=utcnow(), claimed_until=None,
                        last_error=None).where(Decision.id == decision.id).execute()
        tickets.add_work_note(task, f"EPM's update shows it applied the {decision.decision} decision by "
                                    f"{decision.decided_by} (EPM's final decision: {final}{by}): it counts as "
                                    "acknowledged and is not sent again. It is now final.")
        log.info("decision %s on ticket %s acknowledged by EPM's final decision", decision.sys_id, task.number)
        return
    what = f"{final or 'a decision'}{by}"
    message = (f"EPM had already decided request {task.request_id}: {what}. The {decision.decision} decision sent "
               "from here was not applied")
    Decision.update(status=contract.DELIVERY_FAILED, claimed_until=None,
                    last_error=storable(message)[:2000]).where(Decision.id == decision.id).execute()
    _note_not_applied(decision, what, final, None, jit.final_decision_by)


def _note_not_applied(decision, what, epm_decision, epm_status, epm_decided_by):
    """The work note, audit entry and WARNING of a decision EPM had already taken otherwise (not applied)."""
    task = decision.task
    tickets.add_work_note(task, f"Not applied in EPM: EPM had already decided this request ({what}). The "
                                f"{decision.decision} decision by {decision.decided_by} was not applied; "
                                f"the ticket shows EPM's decision, {epm_decision}. Nothing more is sent "
                                "to EPM.")
    audit.record(AUDIT_NOT_APPLIED, audit.SYSTEM_ACTOR, "ticket", task.number, {
        "request_id": task.request_id, "decision_sys_id": decision.sys_id, "decision": decision.decision,
        "decided_by": decision.decided_by, "epm_decision": epm_decision, "epm_status": epm_status,
        "epm_decided_by": epm_decided_by})
    log.warning("decision %s on ticket %s was not applied: EPM had already decided request %s otherwise (%s)",
                decision.sys_id, task.number, task.request_id, what)


def init_app(app):
    """Settle the decisions waiting in the outbox when EPM's own final decision comes in, by whichever path."""
    events.epm_decision_final.connect(settle_open_decisions)


def _record_decided_otherwise(decision, error, calls):
    """EPM had already decided the request the other way (in its console, say, its update webhook not here yet):
    `decision` was not applied. It is refused for good (delivery failed, EPM's answer kept as its error), and the
    ticket shows EPM's decision as that webhook would have made it (final, auto-closed when configured), with a
    work note naming the decision not applied. The ticket takes no new decision: EPM's is final.

    Not the delivery-failed alert, which tells ops the request still waits in EPM for a new decision: it does
    not. As for an EPM update contradicting the broker, the conflict is logged as a WARNING and audited."""
    # Read as a webhook's text is: no text column stores a NUL (the intake replaces it the same way).
    record, task = dataclasses.replace(error.record, **storable(dataclasses.asdict(error.record))), decision.task
    request_id = task.request_id
    what = records.describe(record, request_id)
    try:
        update = decision_event(record, request_id)
    except ValidationError:
        # Details the intake refuses (a control character in EPM's ticket id, say): EPM's decision alone, so the
        # ticket shows it all the same; EPM's update webhook or Check with EPM can tell the rest.
        update = decision_event(records.RequestRecord(record.kind, record.raw, status=record.status,
                                                      decision=record.decision), request_id)
    with write_transaction():
        claims.lock_request(request_id)  # EPM's own update webhook for the request waits, then finds this
        _store_calls(calls)
        if not _still_claimed(decision, status=contract.DELIVERY_FAILED, last_status=error.status,
                              last_error=storable(error.message)[:2000]):
            return
        _note_not_applied(decision, what, record.decision, record.status, record.decided_by)
        finalize_from_record(tickets.find_jit_request(task.kind, request_id), update, record, utcnow())
        ticket_outcome.refresh(task)


def deliver_due(limit=100):
    """One attempt for every decision that is due (or abandoned mid-send); returns how many were tried."""
    due = Decision.select(Decision.id).where(claims.due(Decision)).order_by(Decision.next_attempt_at).limit(limit)
    tried = 0
    for row in list(due):
        deliver_decision(row)
        tried += 1
    if tried:
        log.info("outbox: %s decision deliveries attempted", tried)
    return tried


def retry_now(decision):
    """Make a pending decision due now and attempt it."""
    Decision.update(next_attempt_at=utcnow()).where(
        Decision.id == decision.id, Decision.status == contract.DELIVERY_PENDING).execute()
    return deliver_decision(decision)


def retry_all():
    """Make every pending decision due now and attempt each; returns the decisions tried."""
    Decision.update(next_attempt_at=utcnow()).where(Decision.status == contract.DELIVERY_PENDING).execute()
    pending = list(Decision.select().where(Decision.status == contract.DELIVERY_PENDING).order_by(Decision.id))
    return [deliver_decision(decision) for decision in pending]
