"""The audit chain's rules: what an entry's hash covers, how it is signed, and how a run of entries is checked.

An entry's hash covers its fields and the hash of the entry before it. Entries made since keying
carry `key_id` and their hash is HMAC-SHA256 under that key (app/audit/keys.py), so nobody
without the key can recompute it. Entries made before keying have no `key_id` and a plain SHA-256:
they form one legacy segment at the start of the chain, and the first keyed entry (migration 23
writes one) carries its head as its previous hash, so the legacy part can be neither rewritten
nor extended afterwards. The same rules check the database (`service.verify`) and an export file
(`export.read_links`).
"""
import hashlib
import hmac
import json
from dataclasses import dataclass, field

GENESIS_HASH = "0" * 64

# The fields every hash covers, in the order exports show them; a keyed entry's also covers KEY_ID.
HASHED_FIELDS = ("sys_id", "created_at", "actor", "action", "object_type", "object_id", "source_address", "detail",
                 "previous_hash")
KEY_ID = "key_id"


def _timestamp(moment):
    """UTC, to the microsecond the database keeps, with the Z that says so."""
    return moment.isoformat(timespec="microseconds") + "Z"


def entry_fields(entry):
    """The fields of an entry a legacy hash covers, as plain JSON values."""
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


def signed_fields(entry):
    """Every field an entry's hash covers: `entry_fields`, and the key id when the entry is keyed."""
    fields = entry_fields(entry)
    if entry.key_id is not None:
        fields[KEY_ID] = entry.key_id
    return fields


def _canonical(fields):
    """The one byte string for `fields`: JSON with sorted keys, no spaces, UTF-8."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def compute_hash(fields):
    """SHA-256 (hex) of the canonical JSON of `fields`: the unkeyed hash of a legacy entry."""
    return hashlib.sha256(_canonical(fields)).hexdigest()


def seal(fields, keys):
    """The hash an entry with `fields` must carry: HMAC under the key its key id names, or the legacy SHA-256."""
    if fields.get(KEY_ID) is None:
        return compute_hash(fields)
    return keys.sign(fields[KEY_ID], _canonical(fields))


@dataclass(frozen=True)
class Link:
    """One entry as the checker sees it: its position, every field its hash covers, and its stored hash."""

    position: int
    fields: dict
    entry_hash: str

    @property
    def key_id(self):
        return self.fields.get(KEY_ID)


@dataclass
class Segment:
    """A run of entries signed by one key (`key_id` None: the legacy entries from before keying)."""

    key_id: str
    first: Link
    last: int
    count: int = 0
    head_hash: str = GENESIS_HASH

    def describe(self):
        name = "before keying (unsigned)" if self.key_id is None else f"key {self.key_id}"
        return f"{name}: {self.count} entries, {self.first.position} to {self.last}, head {self.head_hash}"


@dataclass
class ChainResult:
    """What a check found: entries checked, the last good hash, the segments, and the first bad entry."""

    checked: int
    head_hash: str
    segments: list = field(default_factory=list)
    bad: Link = None
    problem: str = None

    @property
    def intact(self):
        return self.bad is None


def check(links, keys, previous_hash=GENESIS_HASH, legacy_may_end=False):
    """Check `links` in order under `keys`; stop at the first entry that is edited, out of place or unsigned.

    `previous_hash` is what the first entry must link to (None: whatever it names, for an export of a
    date range). Unless `legacy_may_end`, a chain whose last entries are unkeyed fails: since keying,
    every legacy segment is followed by a keyed entry, and an unkeyed tail is one written without the key."""
    result = ChainResult(0, previous_hash or GENESIS_HASH)
    expected = previous_hash
    for link in links:
        problem = _problem(link, expected, keys, result.segments)
        if problem:
            return _broken(result, link, problem)
        if not result.segments or result.segments[-1].key_id != link.key_id:
            result.segments.append(Segment(link.key_id, link, link.position))
        segment = result.segments[-1]
        segment.last, segment.count, segment.head_hash = link.position, segment.count + 1, link.entry_hash
        expected = result.head_hash = link.entry_hash
        result.checked += 1
    if result.segments and result.segments[-1].key_id is None and not legacy_may_end:
        tail = result.segments.pop()
        result.checked -= tail.count
        result.head_hash = result.segments[-1].head_hash if result.segments else previous_hash or GENESIS_HASH
        return _broken(result, tail.first,
                       f"it and the {tail.count - 1} entries after it carry no key signature and no "
                       "keyed entry follows them: they were written or rewritten without the key")
    return result


def _problem(link, expected, keys, segments):
    if expected is not None and link.fields.get("previous_hash") != expected:
        return "its link to the entry before does not match: an entry before it was deleted, changed or moved"
    if link.key_id is None:
        if any(segment.key_id is not None for segment in segments):
            return ("it carries no key signature but follows signed entries: it was written or rewritten "
                    "without the key")
        return None if hmac.compare_digest(compute_hash(link.fields), link.entry_hash) else (
            "its content does not match its hash: it was edited")
    if not keys.knows(link.key_id):
        return (f"it is signed with key id {link.key_id}, which is not configured: add that key to "
                "JITBROKER_AUDIT_PREVIOUS_KEYS if it was rotated out, otherwise the entry was forged")
    if not hmac.compare_digest(seal(link.fields, keys), link.entry_hash):
        return "its content does not match its signature: it was edited, or its hash recomputed without the key"
    return None


def _broken(result, link, problem):
    result.bad, result.problem = link, problem
    return result
