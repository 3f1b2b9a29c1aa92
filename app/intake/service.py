"""What a webhook delivery does, in one transaction with its own record.

`receive` stores the delivery and makes or finalizes its ticket before the webhook answers,
so a 2xx means both are committed with the database's configured durability (app/db.py)."""
import logging
import traceback

import peewee
from marshmallow import ValidationError

from app import contract
from app.claims import lock_request
from app.db import database, insert_row_unread, is_unavailable, prepared, write_transaction
from app.errors import BadRequest
from app.intake.schemas import load_event, parse_json_object
from app.models import CONFIGURATION_VERSION, JIT_MODELS, Configuration, IncomingRequest, PurgedRequest, utcnow
from app.tickets import service as tickets

log = logging.getLogger(__name__)

# Headers worth keeping with a delivery; never Authorization or cookies.
KEPT_HEADERS = ("Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Request-Id", "Traceparent")

# Concurrent first deliveries of one RequestId on PostgreSQL: the loser's insert
# violates the unique RequestId, its transaction rolls back, and the retry finds
# the winner's ticket. Two attempts are enough; a third would mean a real bug.
_ATTEMPTS = 3


class Delivery:
    """One delivery as it arrived: raw bytes and the request metadata kept with it."""

    def __init__(self, raw_body, content_type=None, headers=None, source_address=None):
        self.raw_body = raw_body
        # Its column is narrow; EPM's administrator types it (contract 5.5), and `headers` keeps it whole.
        self.content_type = None if content_type is None else content_type[:IncomingRequest.content_type.max_length]
        # Looked up by name, not copied whole (a request's headers are read from its environ).
        headers = {} if headers is None else headers
        self.headers = {name: value for name in KEPT_HEADERS if (value := headers.get(name)) is not None}
        self.source_address = source_address
        # When it arrived, not when its row was written at the end of its processing.
        self.received_at = utcnow()

    def record(self, **values):
        # Its answer names it by sys_id (made here), so its INSERT goes with the COMMIT.
        return insert_row_unread(
            IncomingRequest, raw_body=self.raw_body, content_type=self.content_type, headers=self.headers,
            source_address=self.source_address, received_at=self.received_at, **values,
        )


class StoredDelivery:
    """A stored row in the place of a new delivery (an ops replay, or one queued intake left): `record` updates it."""

    def __init__(self, incoming):
        self.incoming = incoming

    def record(self, **values):
        values.setdefault("error", None)
        values.setdefault("processed_at", None)
        for name, value in values.items():
            setattr(self.incoming, name, value)
        self.incoming.save()
        return self.incoming


def record_rejected(delivery, reason, event_type=None, request_id=None):
    """Store a delivery that cannot be processed, with the reason, and return its row."""
    with write_transaction():
        return delivery.record(status=contract.INCOMING_ERROR, error=reason[:2000], event_type=event_type,
                               request_id=request_id, processed_at=utcnow())


def _describe(messages):
    if isinstance(messages, dict):
        return "; ".join(f"{field}: {_describe(detail)}" for field, detail in messages.items())
    if isinstance(messages, list):
        return " ".join(_describe(message) for message in messages)
    return str(messages)


def _first_value(document, key, limit):
    """`key`'s value as text cut to its column's size, for the record of a rejected delivery."""
    for name, value in document.items():
        if str(name).casefold() == key.casefold() and isinstance(value, (str, int)):
            return str(value)[:limit]
    return None


def _parse(delivery):
    """The delivery's JSON object; raises BadRequest (stored as an error first) when it is not one."""
    try:
        return parse_json_object(delivery.raw_body)
    except BadRequest as error:
        record_rejected(delivery, error.described())
        raise
    except Exception:
        # A body parsing does not foresee: kept as an error with its raw body, as _load keeps one, for ops to replay.
        log.exception("parsing a delivery failed")
        record_rejected(delivery, _processing_failed())
        raise


def _load(delivery, document):
    """(event, fields) of a parsed delivery; raises BadRequest (stored as an error first) when invalid."""
    try:
        return load_event(document)
    except ValidationError as error:
        reason = describe_invalid(error)
        incoming = _record_unread(delivery, document, reason)
        raise BadRequest("Invalid delivery", reason,
                         extra={"fields": error.messages, "incoming_request": incoming.sys_id}) from None
    except Exception:
        # A value reading it does not foresee: kept as an error with its raw body, for ops to replay once mended.
        log.exception("reading a delivery failed")
        _record_unread(delivery, document, _processing_failed())
        raise


def _record_unread(delivery, document, reason):
    """Store a delivery its reading refused, with the EventType and RequestId it gives as text."""
    return record_rejected(delivery, reason,
                           _first_value(document, "EventType", IncomingRequest.event_type.max_length),
                           _first_value(document, "RequestId", IncomingRequest.request_id.max_length))


def describe_invalid(error):
    """A marshmallow ValidationError in one line, as stored with a rejected delivery."""
    return _describe(error.messages)


def receive(delivery):
    """Validate and process a delivery; returns its row, or raises BadRequest once it is stored as an error.

    Parsing, validation and the ticket's rows are done before the write transaction begins, so the
    transaction holds its locks (SQLite's write lock, the ticket number's row) only for the writes."""
    event, fields = _load(delivery, _parse(delivery))
    try:
        rendered = _render(event, fields)
    except Exception:
        _record_failure(delivery, event, fields)
        raise

    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with write_transaction():
                return apply_event(delivery, event, fields, rendered)
        except peewee.IntegrityError:
            if attempt == _ATTEMPTS:
                raise
            log.info("concurrent delivery for RequestId %s; retrying", fields["request_id"])
        except Exception as error:
            if not is_unavailable(error):
                # Kept as an error with its raw body, for ops to replay once what refused it is mended.
                _record_failure(delivery, event, fields)
            raise


def _render(event, fields):
    """A created event's ticket rows, made with the configuration this process read last (None before
    it read one); apply_event checks that configuration's version in its transaction."""
    configuration = Configuration.last_kept()
    if not event.is_created or configuration is None:
        return None
    return tickets.RenderedTicket(event, fields, configuration)


def _record_failure(delivery, event, fields):
    log.exception("delivery for RequestId %s failed", fields["request_id"])
    record_rejected(delivery, _processing_failed(), event.name, fields["request_id"])


def read_stored(incoming):
    """(event, fields) from a stored delivery's body, or (None, reason) when it is not a valid event."""
    if incoming.raw_body is None:
        return None, "the delivery was stored without its body (it was over the size limit); nothing to replay"
    try:
        return load_event(parse_json_object(bytes(incoming.raw_body)))
    except BadRequest as error:
        return None, error.described()
    except ValidationError as error:
        return None, describe_invalid(error)


def _processing_failed():
    return "processing failed: " + traceback.format_exc(limit=3)[-1500:]


def apply_stored(incoming):
    """Apply a delivery stored earlier and never processed, inside the caller's transaction; returns its row.

    A body that is invalid, or whose processing fails, leaves the row an error that ops can replay."""
    delivery = StoredDelivery(incoming)
    event, fields = read_stored(incoming)
    if event is None:
        return delivery.record(status=contract.INCOMING_ERROR, error=fields[:2000], processed_at=utcnow())
    try:
        with database.atomic():  # a savepoint: a failure undoes this delivery's work only
            return apply_event(delivery, event, fields)
    except Exception as error:
        if is_unavailable(error):
            raise
        log.exception("stored delivery %s failed", incoming.sys_id)
        return delivery.record(status=contract.INCOMING_ERROR, task=None, processed_at=utcnow(),
                               error=_processing_failed())


def apply_event(delivery, event, fields, rendered=None):
    """Apply a validated event inside the caller's write transaction; returns the delivery's row.

    `delivery.record(**values)` stores the outcome: a new row, or the stored one an ops replay passes.
    `rendered` is a created event's ticket made before the transaction (receive)."""
    request_id = fields["request_id"]
    lock_request(request_id)
    if event.is_created:
        return _apply_created(delivery, event, fields, rendered)
    jit = tickets.find_jit_request(event.kind, request_id)
    if jit is None:
        if (purged := PurgedRequest.find(event.kind, request_id)) is not None:
            return _record_purged(delivery, event, purged)
        # The update outran its created event: keep it; the created event applies it.
        return delivery.record(event_type=event.name, request_id=request_id, status=contract.INCOMING_RECEIVED)
    task, status = _record_update(jit, event, fields)
    return delivery.record(event_type=event.name, request_id=request_id, task=task, status=status,
                           processed_at=utcnow())


def _apply_created(delivery, event, fields, rendered):
    request_id = fields["request_id"]
    configuration_version, task_id, updates_waiting, purged = _look_up_created(event.kind, request_id)
    if task_id is not None:
        return delivery.record(event_type=event.name, request_id=request_id, task=task_id,
                               status=contract.INCOMING_DUPLICATE, processed_at=utcnow())
    if purged:
        return _record_purged(delivery, event, PurgedRequest.find(event.kind, request_id))
    task = tickets.create_ticket(event, fields, Configuration.as_of(configuration_version), rendered)
    incoming = delivery.record(event_type=event.name, request_id=request_id, task=task,
                               status=contract.INCOMING_PROCESSED, processed_at=utcnow())
    if updates_waiting:
        _apply_waiting_updates(event.kind, request_id)
    return incoming


# The SQL of _look_up_created, by (kind, the database's parameter mark): written once per process.
_LOOKUP_SQL = {}


def _look_up_created(kind, request_id):
    """(the configuration's version, the task of the request's ticket or None, whether update events wait for
    it, whether retention deleted its ticket): what a created event needs to know, in one SELECT inside its
    transaction (after lock_request). A new RequestId costs the purged requests' key one probe."""
    param = database.obj.param
    update_names = _update_names(kind)
    sql = _LOOKUP_SQL.get((kind, param))
    if sql is None:
        sql = _LOOKUP_SQL[(kind, param)] = prepared(
            f'SELECT (SELECT "{CONFIGURATION_VERSION}" FROM "{Configuration._meta.table_name}" '
            f'WHERE "name" = {param}), '
            f'(SELECT "task_id" FROM "{JIT_MODELS[kind]._meta.table_name}" WHERE "request_id" = {param}), '
            f'EXISTS (SELECT 1 FROM "{IncomingRequest._meta.table_name}" WHERE "request_id" = {param} '
            f'AND "status" = {param} AND "event_type" IN ({", ".join([param] * len(update_names))})), '
            f'EXISTS (SELECT 1 FROM "{PurgedRequest._meta.table_name}" WHERE "request_id" = {param} '
            f'AND "kind" = {param})')
    version, task_id, waiting, purged = database.execute_sql(
        sql, (Configuration.DEFAULT_NAME, request_id, request_id, contract.INCOMING_RECEIVED, *update_names,
              request_id, kind),
    ).fetchone()
    return version, task_id, bool(waiting), bool(purged)


def _record_purged(delivery, event, purged):
    """A delivery for a request whose closed ticket retention deleted: stored as the duplicate it is (EPM sends
    again what it sent before, or a later state of a request handled here), saying why it has no ticket. A new
    ticket would let approvers decide the request again and send EPM a second decision."""
    number = f" {purged.number}" if purged.number else ""
    when = f" on {purged.purged_at:%Y-%m-%d}" if purged.purged_at else ""
    reason = (f"RequestId {purged.request_id} was handled here before: its ticket{number} was closed and then "
              f"deleted by retention{when}, so no new ticket is opened and nothing changes")
    return delivery.record(event_type=event.name, request_id=purged.request_id, status=contract.INCOMING_DUPLICATE,
                           error=reason, processed_at=utcnow())


def _record_update(jit, event, fields):
    """(task, IncomingRequest status) of an update applied to its ticket: a true duplicate changes nothing;
    a newer, an older re-sent or a conflicting update is recorded on the ticket (tickets.record_update)."""
    task, outcome = tickets.record_update(jit, event, fields)
    duplicate = outcome == tickets.UPDATE_DUPLICATE
    return task, contract.INCOMING_DUPLICATE if duplicate else contract.INCOMING_PROCESSED


def _update_names(kind):
    return [event.name for event in contract.EVENT_TYPES.values() if event.kind == kind and not event.is_created]


def waiting_updates(kind, request_id):
    """The update events of `kind` stored for `request_id` that wait for their created event, oldest first."""
    return (IncomingRequest.select()
            .where(IncomingRequest.request_id == request_id,
                   IncomingRequest.event_type.in_(_update_names(kind)),
                   IncomingRequest.status == contract.INCOMING_RECEIVED)
            .order_by(IncomingRequest.received_at, IncomingRequest.id))


def _apply_waiting_updates(kind, request_id):
    """Apply the updates that arrived before their created event in arrival order, by the rules of any update
    (tickets.record_update): a resend is a duplicate, an older state arriving after a newer one changes nothing."""
    waiting = waiting_updates(kind, request_id)
    for incoming in waiting:
        event, fields = load_event(parse_json_object(bytes(incoming.raw_body)))
        jit = tickets.find_jit_request(kind, request_id)
        incoming.task, incoming.status = _record_update(jit, event, fields)
        incoming.processed_at = utcnow()
        incoming.save()
