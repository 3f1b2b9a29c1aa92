"""Appending to the signed, hash-chained audit log and checking that nobody edited or deleted an entry.

The chain's rules live in chain.py, its keys in keys.py. Entries removed from the end leave a shorter
chain that still verifies: keep the head hash `verify()` reports (and each retention run logs)
elsewhere to catch that too."""
import getpass
import json
import logging
from datetime import date, datetime, time, timedelta, timezone

from flask import g, has_request_context, request
from marshmallow import Schema, ValidationError, fields, post_load

from app.audit import keys as audit_keys
from app.audit.chain import (  # noqa: F401 (the chain's names, as callers know them)
    GENESIS_HASH, HASHED_FIELDS, KEY_ID, Link, check, compute_hash, entry_fields, seal, signed_fields,
)
from app.audit.models import AuditEntry
from app.db import database, is_sqlite, write_transaction
from app.fields import SYS_ID, Document, later_by
from app.models import new_sys_id, utcnow

log = logging.getLogger(__name__)

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
CHAIN_KEYED = "audit_chain_keyed"

SYSTEM_ACTOR = "system"

# Key ids of earlier entries this process has warned it cannot verify (once each).
_UNKNOWN_KEYS_WARNED = set()


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
        previous = AuditEntry.select(AuditEntry.entry_hash, AuditEntry.key_id).order_by(AuditEntry.id.desc()).first()
        keys = audit_keys.current()
        entry = AuditEntry(
            sys_id=new_sys_id(), created_at=utcnow(), actor=_text(actor, 150), action=_text(action, 64),
            object_type=_text(object_type, 64), object_id=_text(object_id, 255),
            source_address=_text(source_address, 64) if source_address else None, detail=detail,
            previous_hash=previous.entry_hash if previous else GENESIS_HASH, key_id=keys.current_id,
        )
        entry.entry_hash = seal(signed_fields(entry), keys)
        entry.save(force_insert=True)
    if previous is not None and previous.key_id is not None and not keys.knows(previous.key_id):
        _warn_unknown_key(previous.key_id)
    return entry


def _warn_unknown_key(key_id):
    # Another process signs with a key this one lacks: each host generated its own, or a rotation
    # reached only some. `audit verify` here would fail on that process's entries.
    if key_id not in _UNKNOWN_KEYS_WARNED:
        _UNKNOWN_KEYS_WARNED.add(key_id)
        log.warning("the audit entry before this process's last was signed with key id %s, which this process does "
                    "not know: every process sharing the database needs the same JITBROKER_AUDIT_KEY "
                    "(and the previous keys)", key_id)


def close_legacy_segment():
    """Sign an entry recording the head of the entries made before keying, if the chain ends with such entries.

    Migration 23 calls it: from then on the legacy segment is closed by a signed entry, so entries
    appended (or rewritten) later without the key are found by `verify`."""
    last = AuditEntry.select(AuditEntry.key_id).order_by(AuditEntry.id.desc()).first()
    if last is None or last.key_id is not None:
        return None
    legacy = AuditEntry.select().where(AuditEntry.key_id.is_null())
    head = legacy.order_by(AuditEntry.id.desc()).first()
    return record(CHAIN_KEYED, SYSTEM_ACTOR, "audit_log", AuditEntry._meta.table_name,
                  {"legacy_entries": legacy.count(), "legacy_head_hash": head.entry_hash,
                   "key_id": audit_keys.current().current_id})


def links(entries):
    """AuditEntry rows as the chain checker reads them."""
    return (Link(entry.id, signed_fields(entry), entry.entry_hash) for entry in entries)


def head():
    """The newest entry (its id, hash and key id), or None for an empty log: what to anchor elsewhere."""
    return AuditEntry.select(AuditEntry.id, AuditEntry.entry_hash, AuditEntry.key_id).order_by(
        AuditEntry.id.desc()).first()


def verify():
    """Walk the whole chain in order under this process's keys (a `chain.ChainResult`); stops at the first bad entry."""
    return check(links(AuditEntry.select().order_by(AuditEntry.id).iterator()), audit_keys.current())


def parse_bound(text, end=False):
    """A naive UTC datetime from `YYYY-MM-DD` or ISO 8601; as an `end` bound a bare date takes in that whole day.
    Empty (a form's blank field) is no bound; only ASCII spaces around it are ignored, so a value of other
    whitespace (U+0085, U+00A0) is refused rather than read as no bound."""
    text = (text or "").strip(" \t\r\n")
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min)
            if not end:
                return moment
            # The end of the day: of 9999-12-31, the last moment there is.
            return later_by(moment, timedelta(days=1)) or datetime.max
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an ISO 8601 time") from None
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # before year 1 or after 9999 in UTC: the first or the last moment there is
            moment = datetime.min if moment.year == 1 else datetime.max
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
    key_id = fields.String(allow_none=True, metadata={
        "description": "the id of the key whose HMAC entry_hash is; null for an entry made before keying"})
    entry_hash = fields.String(metadata={"pattern": "^[0-9a-f]{64}$"})


def entry_document(entry):
    """An entry as exported: every hashed field, the id of the key that signed it, its hash and its position."""
    return {"id": entry.id, **entry_fields(entry), KEY_ID: entry.key_id, "entry_hash": entry.entry_hash}
