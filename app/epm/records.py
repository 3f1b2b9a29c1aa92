"""EPM's API records as the real API answers them (contract/epm.md §5.1, 5.2, 5.10): nested, read by path
with defaults, never requiring a key, and kept whole so keys the broker does not know are not lost.

Keys section 5 marks † (decisionPerformedByUser, decisionTime, ...) are read only when present; what
`accessDecision.status` means is unconfirmed, so its values map to decisions through a setting."""
import re
from dataclasses import dataclass, field

from app import contract
from app.epm.errors import EpmRejected
from app.fields import duration_words
from app.models import DEFAULT_APPROVED_STATUSES, DEFAULT_DENIED_STATUSES

_WHOLE_NUMBER = re.compile(r"^\d+$")

# Where each fact sits in a record of each kind, most likely first. Application Access records name no
# request id in any source: `id` (the fake's and §5's example), then the Admin Access spelling.
PATHS = {
    contract.KIND_APPLICATION: {
        "request_id": ("id", "requestInfo.requestId", "requestId"),
        "epm_ticket_number": ("requestInfo.ticketId",),
    },
    contract.KIND_ADMIN: {
        "request_id": ("requestInfo.requestId",),
        "epm_ticket_number": ("requestInfo.ticketId",),
    },
}
COMMON_PATHS = {
    "user": ("requestInfo.user", "requestInfo.userName"),
    "user_id": ("requestInfo.userId",),
    "computer_id": ("requestInfo.computerId",),
    "created": ("requestInfo.created",),
    "reason": ("requestInfo.reason",),
    "host": ("requestInfo.hostName",),
    "duration_requested": ("requestInfo.durationRequested",),
    "status": ("accessDecision.status",),
    "duration": ("accessDecision.duration",),
    "start_time": ("accessDecision.startTime",),
    "end_time": ("accessDecision.endTime",),
    "decided_by": ("accessDecision.decisionPerformedByUser",),
    "decision_time": ("accessDecision.decisionTime",),
}
COUNTS = {"duration_requested", "duration"}


def text(value):
    """A scalar as text, as EPM's webhooks carry every value; None, empty text, an unreplaced
    `%%placeholder%%`, an object or an array is no value. A number with a zero fraction is the integer."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    result = str(value).strip()
    return None if not result or contract.PLACEHOLDER.match(result) else result


def count(value):
    """A whole number EPM may send as a number or as text ("1800", 1800, "1800.0" are "1800");
    other text ("Once"), and a number with more digits than Python converts, is kept as it came."""
    result = text(value)
    match = contract.ZERO_FRACTION.match(result or "")
    if not match:
        return result
    try:
        return str(int(match[1]))
    except ValueError:
        return result  # more digits than Python converts (4300): unreadable as a number, kept as text


def child(document, key):
    """`document[key]`, the key matched exactly or else in any letter case; None when absent."""
    if not isinstance(document, dict):
        return None
    if key in document:
        return document[key]
    folded = key.casefold()
    return next((value for name, value in document.items() if str(name).casefold() == folded), None)


def value_at(record, path):
    """The raw value at a dotted path ("requestInfo.user"), or None when any step is missing."""
    current = record
    for key in path.split("."):
        current = child(current, key)
        if current is None:
            return None
    return current


def first_text(record, paths, reader=text):
    """The first path's value that is something, as text; None when none is."""
    for path in paths:
        value = reader(value_at(record, path))
        if value is not None:
            return value
    return None


def page_records(document):
    """The records of one list page (`{"data": [...]}`, the key in any case), or None when `document`
    is not such a page."""
    data = child(document, "data")
    return data if isinstance(data, list) else None


def page_totals(document):
    """(pageCount, totalRecordCount) of a list page as integers; None for one missing or unreadable."""
    return tuple(_total(child(document, name)) for name in ("pageCount", "totalRecordCount"))


def _total(value):
    value = count(value)
    try:
        return int(value) if value and _WHOLE_NUMBER.match(value) else None
    except ValueError:
        return None  # more digits than Python reads as a number: unreadable, as any other nonsense is


def one_record(document):
    """A single read's answer as one record (§5.2): an object, a one-element array, or a `{"data": [...]}`
    envelope of one; an empty array or empty data is "not found" (None). Anything else is EpmRejected."""
    records = page_records(document) if isinstance(document, dict) else document
    if isinstance(document, dict) and records is None:
        return document
    if not isinstance(records, list):
        raise EpmRejected(f"EPM answered a single read with {_kind_of(document)}, not a record.")
    if not records:
        return None
    if len(records) > 1:
        raise EpmRejected(f"EPM answered a single read with {len(records)} records instead of one.")
    if not isinstance(records[0], dict):
        raise EpmRejected(f"EPM answered a single read with {_kind_of(records[0])} inside an array, not a record.")
    return records[0]


def _kind_of(value):
    names = {list: "an array", str: "a string", bool: "true or false", type(None): "null", int: "a number",
             float: "a number", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def statuses(setting):
    """The statuses a comma-separated setting names, stripped, empty ones left out, first spelling kept."""
    named = {}
    for item in str(setting or "").split(","):
        if item.strip():
            named.setdefault(item.strip().casefold(), item.strip())
    return list(named.values())


@dataclass(frozen=True)
class StatusMapping:
    """Which `accessDecision.status` values mean approved and which denied, matched in any letter case;
    anything else (Pending, an unknown value, a status named in both) is undecided."""

    approved: frozenset = field(default_factory=frozenset)
    denied: frozenset = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, approved, denied):
        return cls(frozenset(s.casefold() for s in statuses(approved)),
                   frozenset(s.casefold() for s in statuses(denied)))

    @classmethod
    def of(cls, configuration):
        """The mapping a Configuration record sets (the defaults for settings it lacks)."""
        return cls.from_settings(getattr(configuration, "epm_approved_statuses", DEFAULT_APPROVED_STATUSES),
                                 getattr(configuration, "epm_denied_statuses", DEFAULT_DENIED_STATUSES))

    def decision(self, status):
        key = (status or "").strip().casefold()
        is_approved, is_denied = key in self.approved, key in self.denied
        if is_approved and not is_denied:
            return contract.DECISION_APPROVED
        if is_denied and not is_approved:
            return contract.DECISION_DENIED
        return None


DEFAULT_MAPPING = StatusMapping.from_settings(DEFAULT_APPROVED_STATUSES, DEFAULT_DENIED_STATUSES)


@dataclass(frozen=True)
class RequestRecord:
    """What the broker reads out of one EPM record of `kind`; `raw` is the record as EPM sent it.

    Every value is text or None; `decision` is `status` mapped through the StatusMapping."""

    kind: str
    raw: dict
    request_id: str = None
    epm_ticket_number: str = None
    user: str = None
    user_id: str = None
    computer_id: str = None
    created: str = None
    reason: str = None
    host: str = None
    duration_requested: str = None
    status: str = None
    decision: str = None
    duration: str = None
    start_time: str = None
    end_time: str = None
    decided_by: str = None
    decision_time: str = None

    @property
    def is_pending(self):
        """True when the record shows the request undecided in so many words (contract.EPM_STATUSES_PENDING),
        not merely a status the StatusMapping does not name."""
        return self.decision is None and (self.status or "").strip().casefold() in {
            status.casefold() for status in contract.EPM_STATUSES_PENDING}

    @property
    def request_info(self):
        """The record's `requestInfo` object as EPM sent it ({} when it has none)."""
        info = child(self.raw, "requestInfo")
        return dict(info) if isinstance(info, dict) else {}


def read_record(kind, record, mapping=DEFAULT_MAPPING):
    """The RequestRecord of one EPM record (a dict) of `kind`; a missing key is simply None."""
    if kind not in PATHS:
        raise ValueError(f"Unknown request kind {kind!r}; expected one of {sorted(PATHS)}")
    values = {name: first_text(record, paths, count if name in COUNTS else text)
              for name, paths in {**COMMON_PATHS, **PATHS[kind]}.items()}
    return RequestRecord(kind=kind, raw=record, decision=mapping.decision(values["status"]), **values)


def describe(record, request_id):
    """What EPM's record says, for a person: its status, the decision it maps to, and who, how long and when
    when the record shows them; for no record, that EPM does not know the request."""
    if record is None:
        return f"EPM does not know request {request_id}"
    parts = [f"status {record.status or '(none)'}, {record.decision or 'undecided'}"]
    if record.decided_by:
        parts.append(f"by {record.decided_by}")
    if record.decision_time:
        parts.append(f"at {record.decision_time}")
    if record.duration:
        parts.append(f"duration {duration_words(record.duration)}")
    if record.start_time or record.end_time:
        parts.append(f"from {record.start_time or '?'} to {record.end_time or '?'}")
    return ", ".join(parts)
