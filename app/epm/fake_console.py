"""What EPM's own users do to requests, without the broker: the fake's console, for tests and the demo.

Each action changes what the fake's reads answer and, with notify, sends the webhook EPM would send. The
webhook for a revoked or ended session is inferred (contract/epm.md 5.3): another JIT_ADMIN_TICKET_UPDATED."""
from datetime import datetime, timezone

from app import contract
from app.epm import fake_events
from app.epm.fake_routes import STATUS_FOR

DEFAULT_CONSOLE_USER = "epm-admin"
DEFAULT_CONSOLE_MESSAGE = "Decided in the EPM console"


class FakeEpmConsole:
    """The console actions of FakeEpm; see there for the state they use.

    Each raises KeyError for a request the fake does not know, ValueError for one the action does not
    fit, and FakeEpmError when notify is on and the broker refuses the webhook (the change stays made)."""

    def decide(self, request_id, decision, *, by=DEFAULT_CONSOLE_USER, duration=None,
               message=DEFAULT_CONSOLE_MESSAGE, notify=False, at=None):
        """Decide `request_id` in EPM's console ("Approved" or "Denied"), no broker involved; returns the update
        event, sent to the broker when `notify`. An approval's duration defaults to "Once" (Application
        Access) or the requested seconds (Admin Access, whose session starts at the decision). `at` is when
        the decision was made (an aware datetime or ISO 8601 text; default now)."""
        if decision not in contract.DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(contract.DECISIONS)}, not {decision!r}")
        now = _moment(at) if at else datetime.now(timezone.utc)
        with self._lock:
            known = self._known(request_id)
            if known.decision is not None:
                raise ValueError(f"Request {request_id} has already been decided ({known.decision.get('decision')})")
            approved = decision == contract.DECISION_APPROVED
            body = {"decision": decision, "decisionPerformedByUser": by, "message": message}
            if known.kind == contract.KIND_APPLICATION:
                body.update(status=STATUS_FOR[decision], itsmRequestId=request_id,
                            decisionTime=now.strftime(contract.EPM_DECISION_TIME_FORMAT),
                            duration=str(duration or contract.EPM_DURATION_ONCE))
            else:
                body["requestId"] = request_id
                if approved:
                    body["duration"] = str(duration or known.event.get("DurationRequested")
                                           or contract.EPM_ADMIN_ONCE_DURATION)
            known.settle(body, now)
            event = self.update_event(known)
        return self._notify(event, notify)

    def revoke(self, request_id, *, by=DEFAULT_CONSOLE_USER, notify=True):
        """Set an approved Admin Access request to Denied (5.3): decided by `by` now, the session ending now;
        returns the JIT_ADMIN_TICKET_UPDATED (Decision Denied, new DecisionTime and EndTime), sent when `notify`."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with self._lock:
            known = self._approved_admin_request(request_id, "revoked")
            known.decided, known.decided_by, known.decided_at, known.end_time = (
                contract.DECISION_DENIED, by, now, now)
            event = self.update_event(known)
        return self._notify(event, notify)

    def end_session(self, request_id, *, notify=True):
        """End an approved Admin Access session now, before its planned end (5.3); returns the
        JIT_ADMIN_TICKET_UPDATED (same Decision and DecisionTime, EndTime now), sent when `notify`."""
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with self._lock:
            known = self._approved_admin_request(request_id, "ended")
            known.end_time = now
            event = self.update_event(known)
        return self._notify(event, notify)

    def send_missed(self, request_id):
        """Send the webhooks the broker never got for `request_id` (late webhooks after a reconciliation):
        its created event, then, once decided, the update event of its current state. Returns them."""
        with self._lock:
            known = self._known(request_id)
            events = [known.event] + ([self.update_event(known)] if known.decided is not None else [])
        for event in events:
            self.send_event(event)
        return events

    def update_event(self, known):
        """The update event for `known`'s current decision (URM_NATIVE_DECISION_UPDATE or
        JIT_ADMIN_TICKET_UPDATED); call with the lock held."""
        values = {"decision": known.decided, "decided_by": known.decided_by, "decided_at": known.decided_at,
                  "duration": known.duration}
        if known.kind == contract.KIND_APPLICATION:
            return fake_events.application_update_event(known.event, **values)
        return fake_events.admin_update_event(known.event, start_time=known.start_time, end_time=known.end_time,
                                              **values)

    def _known(self, request_id):
        try:
            return self.requests[request_id]
        except KeyError:
            raise KeyError(f"The fake EPM knows no request {request_id}") from None

    def _approved_admin_request(self, request_id, verb):
        known = self._known(request_id)
        if known.kind != contract.KIND_ADMIN:
            raise ValueError(f"Request {request_id} is an Application Access request: only Admin Access "
                             f"sessions can be {verb}")
        if known.decided != contract.DECISION_APPROVED:
            raise ValueError(f"Request {request_id} is not approved ({known.decided or 'pending'}): only an "
                             f"approved session can be {verb}")
        return known

    def _notify(self, event, notify):
        if notify:
            self.send_event(event)
        return event


def _moment(at):
    """`at` (datetime or ISO 8601 text; no zone means UTC) as an aware UTC datetime; ValueError if neither."""
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    if not isinstance(moment, datetime):
        raise ValueError(f"at must be a datetime or ISO 8601 text, not {at!r}")
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
