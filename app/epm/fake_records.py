"""The fake EPM's read records, in the nested shapes of contract/epm.md section 5 ("Example records").

Strict fakes serve only the keys a public source confirms (5.1, 5.10); lenient ones add the keys the
contract marks with a dagger, so the broker is tested against both and needs neither."""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from app import contract

STATUS_PENDING = "Pending"
DEFAULT_STATUS_TEXT = {STATUS_PENDING: "Pending", contract.DECISION_APPROVED: "Approved",
                       contract.DECISION_DENIED: "Denied"}
RECORD_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# Application Access records keep their top-level `id` even when strict: no source names the key that
# identifies an AuthorizationRequest, and a list a reader cannot tell apart is of no use to it.
CONFIRMED_KEYS = {
    contract.KIND_APPLICATION: {
        None: ("id", "requestInfo", "serviceTicket", "accessDecision"),
        "requestInfo": ("user", "created"),
        "serviceTicket": ("ticketId", "systemId", "url"),
        "accessDecision": ("status",),
    },
    contract.KIND_ADMIN: {
        None: ("requestInfo", "accessDecision"),
        "requestInfo": ("requestId", "ticketId", "userName", "reason", "durationRequested"),
        "accessDecision": ("status", "duration", "startTime", "endTime"),
    },
}
CONFIRMED_PAGE_KEYS = ("totalRecordCount", "pageCount", "data")


@dataclass
class KnownRequest:
    """A request the fake's tenant knows: its created event and, once decided, the decision as applied.

    `decision` is the decision body (the broker's call, or one the fake's console made up); `decided`,
    `decided_by` and the times are EPM's current view, which a revoke or an ended session changes later."""

    kind: str
    event: dict
    decision: dict | None = None
    decided: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @property
    def request_id(self):
        return self.event["RequestId"]

    @property
    def duration(self):
        """The duration the decision body carried ("Once" or seconds), or None (pending, or none sent)."""
        if self.decision is None:
            return None
        return self.decision.get("duration") or None

    def settle(self, body, now):
        """Apply the decision `body` as EPM does: the decision time is the body's (Application Access) or now,
        and an Admin Access approval opens its session now, for `duration` seconds ("Once": no end)."""
        now = now.replace(microsecond=0)
        self.decision = body
        self.decided = body["decision"]
        self.decided_by = body.get("decisionPerformedByUser")
        try:
            self.decided_at = datetime.strptime(body["decisionTime"], contract.EPM_DECISION_TIME_FORMAT).replace(
                tzinfo=timezone.utc)
        except (KeyError, TypeError, ValueError):
            self.decided_at = now
        if self.kind == contract.KIND_ADMIN and self.decided == contract.DECISION_APPROVED:
            self.start_time = now
            duration = str(body.get("duration") or "")
            self.end_time = now + timedelta(seconds=int(duration)) if duration.isdigit() else None


def _time(moment):
    return moment.strftime(RECORD_TIME_FORMAT) if moment else None


def _only(document, keys):
    return {key: document[key] for key in keys}


def application_record(known, status_text):
    """An AuthorizationRequest, every key the double knows (strict_record() trims it)."""
    event, body = known.event, known.decision or {}
    info = event.get("requestInfo", {})
    decided = known.decided is not None
    return {
        "id": known.request_id,
        "requestInfo": {
            "requestId": known.request_id, "user": info.get("user"), "created": event.get("Timestamp"),
            "hostName": info.get("hostName"), "reason": info.get("reason"), "productName": info.get("productName"),
            "publisher": info.get("publisher"), "applicationType": info.get("applicationType"),
        },
        "serviceTicket": {"ticketId": body.get("ticketId"), "systemId": body.get("systemId"),
                          "url": body.get("ticketUrl")},
        "accessDecision": {
            "status": status_text[known.decided or STATUS_PENDING],
            "decision": known.decided,
            "decisionPerformedByUser": known.decided_by,
            "decisionTime": known.decided_at.strftime(contract.EPM_DECISION_TIME_FORMAT) if decided else None,
            "duration": known.duration,
        },
    }


def admin_record(known, status_text):
    """An AdminAccessRequest, every key the double knows (strict_record() trims it)."""
    event = known.event
    return {
        "requestInfo": {
            "requestId": known.request_id, "ticketId": event.get("TicketNumber"), "userName": event.get("UserName"),
            "userId": event.get("UserId"), "computerId": event.get("ComputerId"), "reason": event.get("Reason"),
            "durationRequested": event.get("DurationRequested"),
        },
        "accessDecision": {
            "status": status_text[known.decided or STATUS_PENDING],
            "decision": known.decided,
            "decisionPerformedByUser": known.decided_by,
            "duration": known.duration,
            "startTime": _time(known.start_time),
            "endTime": _time(known.end_time),
        },
    }


def record(known, *, strict, status_text):
    """The record EPM's reads answer for `known`: only confirmed keys when `strict`."""
    full = (application_record if known.kind == contract.KIND_APPLICATION else admin_record)(known, status_text)
    if not strict:
        return full
    keys = CONFIRMED_KEYS[known.kind]
    return {name: _only(full[name], keys[name]) if name in keys else full[name] for name in keys[None]}


def page(records, *, number, size, strict):
    """One page of a list answer; `pageNumber` and `pageSize` are dagger keys, left out when strict."""
    total = len(records)
    answer = {"pageNumber": number, "pageSize": size, "totalRecordCount": total,
              "pageCount": -(-total // size), "data": records[(number - 1) * size:number * size]}
    return _only(answer, CONFIRMED_PAGE_KEYS) if strict else answer
