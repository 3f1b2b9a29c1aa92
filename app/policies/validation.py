"""Is a referenced ticket valid? Finding it (broker or ITSM) and running a rule's checks on it, in order.

The first failure stops the list; an ITSM that cannot be reached is a failure, never a pass."""
from dataclasses import dataclass, field
from datetime import timedelta

from app import contract
from app.fields import clipped
from app.itsm import connector_for
from app.itsm.base import APPROVED, ItsmError
from app.itsm.broker import BROKER_SOURCE, broker_ticket
from app.itsm.models import ItsmConnection
from app.policies.models import CHECK_LABELS, SOURCE_ANY, SOURCE_BROKER

MIN_MINUTES = contract.DURATION_LIMITS[contract.DURATION_MINUTES][0]


def quoted(value):
    """A value in single quotes for a work note or a reason: as it is, never escaped as repr() would
    (EPM's `CORP\\mrivera` must read with one backslash on the ticket)."""
    return f"'{value}'"


SHOWN_REFERENCE_LENGTH = 101


def shown_reference(reference):
    """A ticket reference as a work note or a reason quotes it: at most 101 characters, one longer (a custom pattern
    may match any length, and the requester writes it) cut to its first 100 and "…" (fields.clipped), so the texts
    that quote it keep within their limits."""
    return clipped(reference or "", SHOWN_REFERENCE_LENGTH)


@dataclass
class Lookup:
    """Where a reference was looked for, what was found, and what went wrong on the way."""

    reference: str = ""
    ticket: object = None
    searched: list = field(default_factory=list)
    errors: list = field(default_factory=list)


@dataclass
class CheckResult:
    passed: list
    failed: str = None
    ticket: object = None
    duration_minutes: int = None

    @property
    def ok(self):
        return self.failed is None


def _source_label(name):
    return "the broker" if name == BROKER_SOURCE else f"ITSM {quoted(name)}"


def _connections(source):
    if source == SOURCE_ANY:
        return list(ItsmConnection.select().where(ItsmConnection.enabled == True)  # noqa: E712
                    .order_by(ItsmConnection.name))
    connection = ItsmConnection.get_or_none(ItsmConnection.name == source)
    return [connection] if connection is not None else []


def find_ticket(reference, source):
    """Look `reference` up where the rule says: the broker, one connection, or the broker then every one."""
    found = Lookup(reference)
    if source in (SOURCE_ANY, SOURCE_BROKER):
        found.searched.append(_source_label(BROKER_SOURCE))
        found.ticket = broker_ticket(reference)
        if found.ticket is not None or source == SOURCE_BROKER:
            return found
    connections = _connections(source)
    if not connections and source not in (SOURCE_ANY, SOURCE_BROKER):
        found.errors.append(f"there is no ITSM connection named {quoted(source)}")
    for connection in connections:
        found.searched.append(_source_label(connection.name))
        if not connection.enabled:
            found.errors.append(f"ITSM {quoted(connection.name)} is disabled")
            continue
        try:
            found.ticket = connector_for(connection).lookup(reference)
        except (ItsmError, ValueError) as error:
            found.errors.append(str(error))
            continue
        if found.ticket is not None:
            return found
    return found


def _window_text(ticket):
    return f"{ticket.window_start:%Y-%m-%d %H:%M} – {ticket.window_end:%Y-%m-%d %H:%M} UTC"


def check_exists(rule, facts, ticket, now, found):
    if ticket is not None:
        return True, f"{shown_reference(ticket.number)} exists in {_source_label(ticket.source)}"
    where = ", ".join(found.searched) or "nowhere"
    problems = f" ({'; '.join(found.errors)})" if found.errors else ""
    return False, f"{shown_reference(found.reference)} was not found in {where}{problems}"


def check_state(rule, facts, ticket, now, found):
    allowed = rule.allowed_state_labels
    if ticket.state and ticket.state.strip().casefold() in {label.casefold() for label in allowed}:
        return True, f"its state {quoted(ticket.state)} is allowed"
    return False, f"its state {quoted(ticket.state or 'unknown')} is not one of {', '.join(allowed) or 'no states'}"


def check_approved(rule, facts, ticket, now, found):
    if ticket.approval == APPROVED:
        return True, "it is approved"
    return False, f"its approval is {quoted(ticket.approval or 'unknown')}, not approved"


def check_window(rule, facts, ticket, now, found):
    if ticket.window_start is None or ticket.window_end is None:
        return False, "it has no planned window"
    if not ticket.window_start <= now < ticket.window_end:
        return False, f"its planned window {_window_text(ticket)} does not cover now"
    left = ticket.window_end - now
    if left < timedelta(minutes=MIN_MINUTES):
        return False, f"its planned window {_window_text(ticket)} ends in under {MIN_MINUTES} minutes"
    minutes_left = int(left.total_seconds() // 60)
    return True, f"its planned window {_window_text(ticket)} covers now ({minutes_left} minutes left)"


def check_requester(rule, facts, ticket, now, found):
    if ticket.requester and facts.user and contract.user_key(ticket.requester) == contract.user_key(facts.user):
        return True, f"its requester {quoted(ticket.requester)} is the JIT requester {quoted(facts.user)}"
    return False, (f"its requester {quoted(ticket.requester or 'unknown')} is not the JIT requester "
                   f"{quoted(facts.user or 'unknown')}")


CHECK_FUNCTIONS = {
    "exists": check_exists, "state": check_state, "approved": check_approved, "window": check_window,
    "requester": check_requester,
}


def validate_reference(rule, facts, reference, now):
    """Run the rule's enabled checks on `reference`; a CheckResult with the duration to grant."""
    checks = rule.checks_enabled()
    found = find_ticket(reference, rule.ticket_source) if checks else Lookup(reference)
    ticket = found.ticket
    passed = []
    for name in checks:
        if ticket is None and name != "exists":
            where = "; ".join(found.errors) or "in " + (", ".join(found.searched) or "nowhere")
            return CheckResult(passed, f"{CHECK_LABELS[name]} cannot be checked: {shown_reference(reference)} "
                                       f"was not found ({where})")
        ok, text = CHECK_FUNCTIONS[name](rule, facts, ticket, now, found)
        if not ok:
            return CheckResult(passed, text, ticket)
        passed.append(text)
    return CheckResult(passed, None, ticket, granted_minutes(rule, ticket, now))


def granted_minutes(rule, ticket, now, until=None):
    """The smaller of the rule's maximum and what is left of the window (or `until`), in whole minutes."""
    minutes = rule.max_duration_minutes
    end = until
    if end is None and rule.check_window and ticket is not None and ticket.window_end is not None:
        end = ticket.window_end
    if end is not None:
        minutes = min(minutes, int((end - now).total_seconds() // 60))
    return max(minutes, MIN_MINUTES)
