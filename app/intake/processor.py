"""The queued intake's processor: turns stored deliveries into tickets, oldest first.

In queued mode (`[intake] mode = "queued"`) the webhook only stores each delivery
(QueuedDelivery). The processor takes them into the incoming-request log, marked
`queued`, and applies them with the same `apply_event` the inline
mode runs inside the request, each delivery in its own write transaction, and
queues the policies of every new ticket as the inline webhook does. It runs as a
thread of every `jitbroker scheduler` process (at a lower CPU priority, so that
under a burst the web workers answering EPM come first), or once from
`jitbroker process-deliveries`.

Several processors may run at once (a standby scheduler, a command from cron):
each row is claimed inside its transaction (SQLite's write lock; `FOR UPDATE SKIP
LOCKED` on PostgreSQL) and re-checked as still queued, so one of them applies it.
A delivery that fails the full validation, or whose processing fails, becomes an
`error` row with the reason, exactly as one refused inline; it never stops the rest.
"""
import logging
import os
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

import peewee
from peewee import fn
from marshmallow import ValidationError

from app import contract
from app.db import UNAVAILABLE_ERRORS, checkpoint, database, is_sqlite, write_transaction
from app.errors import BadRequest
from app.intake.payload import parse_json_object
from app.intake.schemas import load_event
from app.intake.service import StoredDelivery, apply_event, describe_invalid, made_new_ticket
from app.models import IncomingRequest, QueuedDelivery, utcnow

log = logging.getLogger(__name__)

BATCH = 200
POLL_SECONDS = 0.5
# How often the processor looks at the arrival rate (an indexed MAX(id) and a count of the
# deliveries not yet taken in, each time).
PAUSE_CHECK_SECONDS = 0.5
# How often the processor checkpoints SQLite's WAL, which the webhook's inserts leave to it
# (app/db.py), also while it waits for a burst to pass. A checkpoint syncs the WAL and the
# database file, and inserts committing meanwhile were seen to stall (intake p99): the more
# often, the less each checkpoint copies and syncs, and the shorter the stall.
CHECKPOINT_SECONDS = 0.25
# Two concurrent deliveries of one RequestId on PostgreSQL: see app/intake/service.py.
_ATTEMPTS = 3


# What a delivery taken in from QueuedDelivery keeps: everything the webhook stored.
_TAKEN_FIELDS = ("sys_id", "event_type", "request_id", "raw_body", "content_type", "headers", "source_address",
                 "received_at")


def take_in(limit=BATCH):
    """Move up to `limit` deliveries the webhook stored into the incoming-request log, queued,
    oldest first, in one transaction; returns how many it moved.

    Each keeps its sys_id (the one EPM's answer named) and its arrival order: they get
    their IncomingRequest ids in the order they arrived. Rows are claimed (SQLite's
    write lock; `FOR UPDATE SKIP LOCKED` on PostgreSQL), so two processors never move one twice.
    """
    with write_transaction():
        query = QueuedDelivery.select(QueuedDelivery.id).order_by(QueuedDelivery.id).limit(limit)
        if not is_sqlite():
            query = query.for_update("FOR UPDATE SKIP LOCKED")
        ids = [row_id for (row_id,) in query.tuples()]
        if not ids:
            return 0
        columns = [getattr(QueuedDelivery, name) for name in _TAKEN_FIELDS]
        taken = (QueuedDelivery.select(*columns, peewee.Value(contract.INCOMING_RECEIVED), peewee.Value(True))
                 .where(QueuedDelivery.id.in_(ids)).order_by(QueuedDelivery.id))
        IncomingRequest.insert_from(taken, [*(getattr(IncomingRequest, name) for name in _TAKEN_FIELDS),
                                            IncomingRequest.status, IncomingRequest.queued]).execute()
        QueuedDelivery.delete().where(QueuedDelivery.id.in_(ids)).execute()
    return len(ids)


def queued_ids(limit=BATCH):
    """Ids of deliveries waiting for the processor, oldest first."""
    query = (IncomingRequest.select(IncomingRequest.id)
             .where(IncomingRequest.queued == True)  # noqa: E712
             .order_by(IncomingRequest.id).limit(limit))
    return [row_id for (row_id,) in query.tuples()]


def queued_count():
    """Deliveries stored by queued intake and not yet applied: waiting to be taken in, or taken in."""
    return QueuedDelivery.select().count() + \
        IncomingRequest.select().where(IncomingRequest.queued == True).count()  # noqa: E712


def _claim(incoming_id):
    query = IncomingRequest.select().where(IncomingRequest.id == incoming_id,
                                           IncomingRequest.queued == True)  # noqa: E712
    if not is_sqlite():
        query = query.for_update("FOR UPDATE SKIP LOCKED")
    return query.first()


def _apply(incoming):
    stored = StoredDelivery(incoming)
    try:
        event, fields = load_event(parse_json_object(bytes(incoming.raw_body or b"")))
    except BadRequest as error:
        return stored.record(status=contract.INCOMING_ERROR, error=f"{error.message}: {error.detail}"[:2000],
                             processed_at=utcnow())
    except ValidationError as error:
        return stored.record(status=contract.INCOMING_ERROR, error=describe_invalid(error)[:2000],
                             processed_at=utcnow())
    return apply_event(stored, event, fields)


def _failure(incoming_id):
    """Log the exception being handled; returns the reason stored with the delivery."""
    log.exception("stored delivery %s failed", incoming_id)
    return "processing failed: " + traceback.format_exc(limit=3)[-1500:]


def process_one(incoming_id):
    """Apply one queued delivery; returns its row afterwards, or None when it is no longer queued."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with write_transaction():
                incoming = _claim(incoming_id)
                return None if incoming is None else _apply(incoming)
        except peewee.IntegrityError:
            if attempt < _ATTEMPTS:
                log.info("concurrent delivery for stored delivery %s; retrying", incoming_id)
                continue
            reason = _failure(incoming_id)
        except UNAVAILABLE_ERRORS:
            raise
        except Exception:
            reason = _failure(incoming_id)
        # Kept as an error with its reason (ops can replay it), so the deliveries after it go on.
        with write_transaction():
            incoming = _claim(incoming_id)
            return None if incoming is None else StoredDelivery(incoming).record(
                status=contract.INCOMING_ERROR, error=reason, processed_at=utcnow())
    return None


def new_ticket_evaluation(incoming):
    """Queue the policies of the ticket a processed created event made; returns the evaluation or None."""
    from app.policies.queue import queue_evaluation

    return queue_evaluation(incoming.task) if made_new_ticket(incoming) else None


def process_queued(limit=BATCH, run_evaluation=None, should_pause=None):
    """Apply up to `limit` queued deliveries, oldest first; returns how many this call applied.

    `run_evaluation(evaluation_id)` is called for each new ticket's queued policy
    evaluation (none: the scheduler's evaluate_policies job runs them). When
    `should_pause()` is true before a delivery, the call stops there.
    """
    take_in(limit)
    applied = 0
    for incoming_id in queued_ids(limit):
        if should_pause is not None and should_pause():
            break
        incoming = process_one(incoming_id)
        if incoming is None:
            continue
        applied += 1
        try:
            evaluation = new_ticket_evaluation(incoming)
        except Exception:  # noqa: BLE001 - the job picks it up; the ticket exists either way
            log.exception("could not queue the policies of %s", incoming.task_id)
            evaluation = None
        if evaluation is not None and run_evaluation is not None:
            run_evaluation(evaluation.id)
    return applied


def lower_this_threads_priority(nice):
    """Lower the calling thread's CPU priority (Linux sets niceness per thread)."""
    if not nice:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(0, min(19, int(nice))))
    except (AttributeError, OSError) as error:
        log.warning("could not lower the delivery processor's priority: %s", error)


class ArrivalRate:
    """How fast deliveries are arriving, from the growth between looks of the newest incoming
    request's id plus the deliveries waiting to be taken in (taking one in moves it from the
    second to the first, which leaves the sum as it was).
    """

    def __init__(self, look_every_seconds=PAUSE_CHECK_SECONDS):
        self.look_every = look_every_seconds
        self._last = None  # (monotonic time, newest id)
        self.per_second = 0.0

    def update(self):
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.look_every:
            return self.per_second
        newest = (IncomingRequest.select(fn.MAX(IncomingRequest.id)).scalar() or 0) + QueuedDelivery.select().count()
        if self._last is not None:
            self.per_second = (newest - self._last[1]) / (now - self._last[0])
        self._last = (now, newest)
        return self.per_second


class DeliveryProcessor:
    """Applies queued deliveries in a thread until stopped; polls every `poll_seconds` when idle.

    While deliveries arrive faster than `pause_above` per second (a burst larger than
    a processor could follow anyway), it waits: its transactions would only hold up the
    webhook's inserts (SQLite has one writer) and take CPU the answers to EPM need. It
    resumes as soon as the rate drops, and works the backlog off oldest first. Busy or
    waiting, it checkpoints SQLite's WAL every CHECKPOINT_SECONDS in the webhook's stead.
    """

    def __init__(self, app, poll_seconds=POLL_SECONDS, nice=None, pause_above=None):
        self.app = app
        self.poll_seconds = poll_seconds
        settings = app.extensions["settings"]
        self.nice = settings.intake_processor_nice if nice is None else nice
        self.pause_above = settings.intake_processor_pause_above if pause_above is None else pause_above
        self.arrivals = ArrivalRate()
        self._checkpointed_at = float("-inf")

    def checkpoint_when_due(self):
        now = time.monotonic()
        if now - self._checkpointed_at >= CHECKPOINT_SECONDS:
            checkpoint()
            self._checkpointed_at = now

    def busy(self):
        return bool(self.pause_above) and self.arrivals.update() > self.pause_above

    def run(self, stop_event):
        from app.policies.queue import run_in_background

        lower_this_threads_priority(self.nice)
        # Policies may call an ITSM or EPM: they run beside the processor, never in its way.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="policies") as evaluations:
            def run_evaluation(evaluation_id):
                evaluations.submit(run_in_background, self.app, evaluation_id)

            while not stop_event.is_set():
                try:
                    with self.app.app_context(), database.connection_context():
                        # Looked at every round, so a burst is seen from its first half second.
                        applied = 0 if self.busy() else process_queued(run_evaluation=run_evaluation,
                                                                          should_pause=self.busy)
                        self.checkpoint_when_due()
                except UNAVAILABLE_ERRORS as error:
                    log.warning("delivery processor: the database is unavailable: %s", error)
                    applied = 0
                except Exception:  # noqa: BLE001 - keep processing the next deliveries
                    log.exception("delivery processor failed; trying again")
                    applied = 0
                if not applied:
                    stop_event.wait(self.poll_seconds)

    def start(self, stop_event):
        thread = threading.Thread(target=self.run, args=(stop_event,), name="delivery-processor", daemon=True)
        thread.start()
        return thread
