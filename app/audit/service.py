"""Appending to the hash-chained audit log and checking that nobody edited or deleted an entry.

Entries removed from the end leave a shorter chain that still verifies: keep the head hash `verify()`
reports elsewhere to catch that too."""
import getpass
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from flask import g, has_request_context, request
from marshmallow import Schema, ValidationError, fields, post_load

from app.audit.models import AuditEntry
from app.db import database, is_sqlite, write_transaction
from app.fields import SYS_ID, Document
from app.models import new_sys_id, utcnow

GENESIS_HASH = "0" * 64

# Arbitrary constant naming the PostgreSQL advisory lock that makes appends take turns.
_APPEND_LOCK_KEY = 73_015_203

# Actions the broker records; other modules may record their own (e.g. replays, purges).
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
USER_CREATE = "user_create"
USER_ROLE_CHANGE = "user_role_change"
USER_PASSWORD_RESET = "user_password_reset"
USER_DEACTIVATE = "user_deactivate"
USER_REACTIVATE = "user_reactivate"
DECISION = "decision"
STATE_CHANGE = "state_change"
CONFIGURATION_CHANGE = "configuration_change"

SYSTEM_ACTOR = "system"

# The fields the hash covers, in the order exports show them.
HASHED_FIELDS = ("sys_id", "created_at", "actor", "action", "object_type", "object_id", "source_address", "detail",
                 "previous_hash")


def cli_actor():
    """Who ran a `jitbroker` command: the operating-system user, marked as the command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}"


def _request_actor():
    account = g.get("account") if has_request_context() else None
    return account.username if account is not None else SYSTEM_ACTOR


def _timestamp(moment):
    """UTC, to the microsecond the database keeps, with the Z that says so."""
    return moment.isoformat(timespec="microseconds") + "Z"


def entry_fields(entry):
    """The hashed fields of an entry, as plain JSON values."""
    return {
        "sys_id": entry.sys_id,
        "created_at": _timestamp(entry.created_at),
        "actor": entry.actor,
        "action": entry.action,
        "object_type": entry.object_type,
        "object_id": entry.object_id,
        "source_address": entry.source_address,
        "detail": entry.detail,
        "previous_hash": entry.previous_hash,
    }


def compute_hash(fields):
    """SHA-256 (hex) of the canonical JSON of `fields`: sorted keys, no spaces, UTF-8."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text(value, limit):
    return str(value if value is not None else "")[:limit]


def record(action, actor, object_type, object_id, detail=None, source_address=None):
    """Append an entry to the audit log and return it; `actor` None is the request's signed-in account, or "system".

    `detail` must hold no secret. Call it last in the transaction making the change, so both are stored
    together and the append lock is held briefly."""
    if actor is None:
        actor = _request_actor()
    actor = getattr(actor, "username", actor)
    if source_address is None and has_request_context():
        source_address = request.remote_addr
    # Round-trip through JSON so the hash covers exactly what the database returns.
    detail = json.loads(json.dumps(detail or {}, default=str))
    with write_transaction():
        # The previous hash must be read and the new entry written with no other
        # append in between: SQLite's write transaction already excludes other
        # writers; PostgreSQL appends queue on this advisory lock until commit.
        if not is_sqlite():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK_KEY,))
        previous = AuditEntry.select(AuditEntry.entry_hash).order_by(AuditEntry.id.desc()).first()
        entry = AuditEntry(
            sys_id=new_sys_id(), created_at=utcnow(), actor=_text(actor, 150), action=_text(action, 64),
            object_type=_text(object_type, 64), object_id=_text(object_id, 255),
            source_address=_text(source_address, 64) if source_address else None, detail=detail,
            previous_hash=previous.entry_hash if previous else GENESIS_HASH,
        )
        entry.entry_hash = compute_hash(entry_fields(entry))
        entry.save(force_insert=True)
    return entry


@dataclass
class VerifyResult:
    """What `verify` found: how many entries it checked, the last good hash, and the first bad entry."""

    checked: int
    head_hash: str
    bad_entry: AuditEntry = None
    problem: str = None

    @property
    def intact(self):
        return self.bad_entry is None


def verify():
    """Walk the whole chain in order; stop at the first entry that was edited or follows a deleted one."""
    expected_previous = GENESIS_HASH
    checked = 0
    for entry in AuditEntry.select().order_by(AuditEntry.id).iterator():
        if entry.previous_hash != expected_previous:
            return VerifyResult(checked, expected_previous, entry,
                                "its link to the entry before does not match: an entry before it was deleted or changed")
        if compute_hash(entry_fields(entry)) != entry.entry_hash:
            return VerifyResult(checked, expected_previous, entry, "its content does not match its hash: it was edited")
        expected_previous = entry.entry_hash
        checked += 1
    return VerifyResult(checked, expected_previous)


def parse_bound(text, end=False):
    """A naive UTC datetime from `YYYY-MM-DD` or ISO 8601; as an `end` bound a bare date takes in that whole day."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min)
            return moment + timedelta(days=1) if end else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


class Bound(fields.String):
    """A day (YYYY-MM-DD) or an ISO 8601 time as naive UTC (`parse_bound`); `end` takes in the whole day."""

    def __init__(self, end=False, **kwargs):
        super().__init__(load_default=None, **kwargs)
        self.end = end

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return parse_bound(super()._deserialize(value, attr, data, **kwargs), end=self.end)
        except ValueError as error:
            raise ValidationError(str(error)) from None


_DAY_OR_TIME = [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]


class AuditFilterSchema(Schema):
    """actor, action, since and until from a query string (loaded with `fields.load_query`)."""

    actor = fields.String(load_default="")
    action = fields.String(load_default="")
    since = Bound(metadata={"anyOf": _DAY_OR_TIME,
                            "description": "from this day or time (UTC unless it carries an offset)"})
    until = Bound(end=True, metadata={"anyOf": _DAY_OR_TIME,
                                      "description": "before this time; a day includes the whole day"})

    @post_load
    def _trimmed(self, data, **_kwargs):
        return {**data, "actor": data["actor"].strip()[:150], "action": data["action"].strip()[:64]}


def newest_entries(filters, before, count):
    """Up to `count` entries matching `filters`, newest first, with ids below `before` (0: from the newest)."""
    query = entries_between(**filters).order_by(AuditEntry.id.desc())
    if before:
        query = query.where(AuditEntry.id < before)
    return list(query.limit(count))


# A loose index scan: one seek in the action index per distinct action, where SELECT DISTINCT
# reads the action of every entry (millions of index entries for a dozen actions).
_DISTINCT_ACTIONS = (
    "WITH RECURSIVE found (name) AS ("
    " SELECT MIN(action) FROM x_bets_pmc_jit_audit_log"
    " UNION ALL"
    " SELECT (SELECT MIN(action) FROM x_bets_pmc_jit_audit_log WHERE action > found.name)"
    " FROM found WHERE found.name IS NOT NULL"
    ") SELECT name FROM found WHERE name IS NOT NULL"
)


def action_names():
    """Every action the log holds, in order: the choices of the page's action filter."""
    return [name for name, in database.execute_sql(_DISTINCT_ACTIONS)]


def entries_between(since=None, until=None, actor=None, action=None, after=None):
    """Entries oldest first, created at or after `since` and before `until` (naive UTC datetimes),
    with ids above `after` when given (a seek on the primary key)."""
    query = AuditEntry.select().order_by(AuditEntry.id)
    if after is not None:
        query = query.where(AuditEntry.id > after)
    if since is not None:
        query = query.where(AuditEntry.created_at >= since)
    if until is not None:
        query = query.where(AuditEntry.created_at < until)
    if actor:
        query = query.where(AuditEntry.actor == actor)
    if action:
        query = query.where(AuditEntry.action == action)
    return query


class AuditEntrySchema(Document):
    """What entry_document gives: the hashed fields exactly as hashed, the hash and the position."""

    id = fields.Integer()
    sys_id = fields.String(metadata=SYS_ID)
    created_at = fields.String(metadata={"format": "date-time"})
    actor = fields.String()
    action = fields.String()
    object_type = fields.String()
    object_id = fields.String()
    source_address = fields.String(allow_none=True)
    detail = fields.Dict()
    previous_hash = fields.String(metadata={"pattern": "^[0-9a-f]{64}$"})
    entry_hash = fields.String(metadata={"pattern": "^[0-9a-f]{64}$"})


def entry_document(entry):
    """An entry as exported: every hashed field, its hash and its position."""
    return {"id": entry.id, **entry_fields(entry), "entry_hash": entry.entry_hash}
