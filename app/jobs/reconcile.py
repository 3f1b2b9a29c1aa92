"""Reconciliation with EPM: create the tickets and record the final decisions that lost webhooks left out.

Running it again changes nothing, and nothing is deleted or reopened. ASSUMPTION: EPM's read records are
unpublished; they are read in the fake EPM's shape and, case-insensitively, by the webhooks' field names."""
import logging
from dataclasses import dataclass, field

import peewee
from flask import current_app
from marshmallow import ValidationError

from app import contract
from app.audit import service as audit
from app.claims import lock_request
from app.db import write_transaction
from app.decisions.service import latest_decision
from app.epm.client import MAX_PAGE_SIZE, EpmClient
from app.intake import service as intake
from app.intake.schemas import load_event
from app.logs.outbound import outbound_call_recorder
from app.models import Configuration
from app.tickets import service as tickets

log = logging.getLogger(__name__)

AUDIT_TICKET_CREATED = "reconcile_ticket_created"
AUDIT_DECISION_FINALIZED = "reconcile_decision_finalized"
# A tenant with more pages than this is a paging loop (EPM ignoring PageNumber), not data.
MAX_PAGES = 5000
KINDS = (contract.KIND_APPLICATION, contract.KIND_ADMIN)
CREATED_EVENT = {contract.KIND_APPLICATION: contract.URM_TICKET_CREATED, contract.KIND_ADMIN:
                 contract.ADMIN_TICKET_CREATED}
UPDATE_EVENT = {contract.KIND_APPLICATION: contract.URM_DECISION_UPDATE, contract.KIND_ADMIN:
                contract.ADMIN_TICKET_UPDATED}

# Names an EPM read record may use for each fact, most likely first (see the ASSUMPTION above).
ALIASES = {
    "request_id": ("id", "requestId", "itsmRequestId", "authorizationRequestId", "adminAccessRequestId"),
    "ticket_number": ("ticketNumber", "ticketId"),
    "tenant_id": ("tenantId",),
    "created": ("createdDate", "created", "createdAt", "requestDate", "requestedDate", "timestamp"),
    "decision": ("decision", "status", "state", "decisionStatus"),
    "decided_by": ("decisionPerformedByUser", "decidedBy", "approver"),
    "decision_time": ("decisionTime", "decisionDate", "decidedAt"),
    "duration": ("duration", "approvedDuration"),
    "start_time": ("startTime",),
    "end_time": ("endTime",),
    "user": ("user", "userName", "accountName"),
    "user_id": ("userId",),
    "host": ("hostName", "computerName", "host"),
    "computer_id": ("computerId",),
    "group_id": ("groupId", "computerGroupId"),
    "reason": ("reason",),
    "duration_requested": ("durationRequested", "requestedDuration"),
}
_APPROVED = {"approved", "approve", contract.EPM_STATUS_APPROVED}
_DENIED = {"denied", "deny", "rejected", "declined", contract.EPM_STATUS_DENIED}


@dataclass
class ReconcileReport:
    """What a reconciliation found and changed (or, with dry_run, would change)."""

    dry_run: bool = False
    seen: dict = field(default_factory=lambda: {kind: 0 for kind in KINDS})
    created: list = field(default_factory=list)     # {kind, request_id, ticket, decision}
    finalized: list = field(default_factory=list)   # {kind, request_id, ticket, decision, why}
    awaiting: list = field(default_factory=list)    # decisions delivered here that EPM still shows pending
    problems: list = field(default_factory=list)    # records or pages that could not be used

    @property
    def changes(self):
        return len(self.created) + len(self.finalized)

    def lines(self):
        """The report for a person: one line per change, then the totals."""
        verb = "Would create" if self.dry_run else "Created"
        lines = [f"EPM lists {self.seen[contract.KIND_APPLICATION]} application and "
                 f"{self.seen[contract.KIND_ADMIN]} admin access requests."]
        for item in self.created:
            ticket = f" {item['ticket']}" if item["ticket"] else " a ticket"
            decided = f", with EPM's final decision {item['decision']}" if item["decision"] else ""
            lines.append(f"{verb}{ticket} for {item['kind']} request {item['request_id']}{decided}")
        verb = "Would finalize" if self.dry_run else "Finalized"
        for item in self.finalized:
            lines.append(f"{verb} {item['ticket']}: EPM shows {item['decision']} ({item['why']})")
        for item in self.awaiting:
            lines.append(f"{item['ticket']}: EPM acknowledged the decision sent from here but still shows it pending")
        lines.extend(f"Problem: {problem}" for problem in self.problems)
        lines.append(str(self))
        return lines

    def __str__(self):
        prefix = "dry run: " if self.dry_run else ""
        return (f"{prefix}{len(self.created)} tickets created, {len(self.finalized)} decisions finalized, "
                f"{len(self.awaiting)} awaiting EPM, {len(self.problems)} problems")


def _lookup(record):
    """A case-insensitive view of a record, with a nested requestInfo's keys as a fallback."""
    folded = {}
    nested = next((value for key, value in record.items() if str(key).casefold() == "requestinfo"), None)
    for source in (record, nested if isinstance(nested, dict) else {}):
        for key, value in source.items():
            folded.setdefault(str(key).casefold(), value)
    return folded


def _value(folded, name):
    for alias in ALIASES[name]:
        value = folded.get(alias.casefold())
        if value is not None and not isinstance(value, (dict, list)) and str(value).strip():
            return value
    return None


def final_decision(folded):
    """EPM's decision as the contract names it (Approved/Denied), or None while pending."""
    value = _value(folded, "decision")
    text = str(value).strip().casefold() if value is not None else ""
    if text in _APPROVED:
        return contract.DECISION_APPROVED
    if text in _DENIED:
        return contract.DECISION_DENIED
    return None


def _created_document(kind, folded):
    """The webhook EPM would have sent for this request, so the intake's schema reads it."""
    common = {"EventType": CREATED_EVENT[kind].name, "RequestId": _value(folded, "request_id"),
              "TenantId": _value(folded, "tenant_id"), "Timestamp": _value(folded, "created"),
              "TicketNumber": _value(folded, "ticket_number")}
    if kind == contract.KIND_APPLICATION:
        info = {key: folded[key.casefold()] for key in contract.URM_REQUEST_INFO_KEYS
                if key.casefold() in folded and not isinstance(folded[key.casefold()], (dict, list))}
        info.setdefault("user", _value(folded, "user"))
        info.setdefault("hostName", _value(folded, "host"))
        info.setdefault("reason", _value(folded, "reason"))
        return {**common, "requestInfo": {key: value for key, value in info.items() if value is not None}}
    return {**common, "ComputerId": _value(folded, "computer_id") or _value(folded, "host"),
            "GroupId": _value(folded, "group_id"), "Reason": _value(folded, "reason"),
            "UserId": _value(folded, "user_id"), "UserName": _value(folded, "user"),
            "DurationRequested": _value(folded, "duration_requested")}


def _update_document(kind, folded, decision):
    """The update event EPM would have sent for its final decision."""
    decided = {"Decision": decision, "DecisionTime": _value(folded, "decision_time"),
               "DecisionPerformedByUser": _value(folded, "decided_by"), "Duration": _value(folded, "duration")}
    common = {"EventType": UPDATE_EVENT[kind].name, "RequestId": _value(folded, "request_id"),
              "TenantId": _value(folded, "tenant_id"), "TicketNumber": _value(folded, "ticket_number")}
    if kind == contract.KIND_APPLICATION:
        return {**common, "requestInfo": decided}
    return {**common, **decided, "StartTime": _value(folded, "start_time"), "EndTime": _value(folded, "end_time"),
            "DurationRequested": _value(folded, "duration_requested")}


def _as_text(document):
    """Every value as text, as EPM's webhooks send them; None left out."""
    result = {}
    for key, value in document.items():
        if isinstance(value, dict):
            result[key] = _as_text(value)
        elif value is not None:
            result[key] = ("True" if value else "False") if isinstance(value, bool) else str(value)
    return result


class _Reconciled:
    """The intake's `delivery` for a created event rebuilt from EPM's list: nothing arrived, so
    nothing is stored as a delivery; the outcome is only handed back."""

    def record(self, **values):
        return values


def _records(client, kind, report):
    """Every record EPM lists for `kind`, page after page."""
    page = 1
    while page <= MAX_PAGES:
        document = client.list_requests(kind, page_size=MAX_PAGE_SIZE, page_number=page)
        folded = {str(key).casefold(): value for key, value in document.items()}
        data = folded.get("data")
        if not isinstance(data, list):
            report.problems.append(f"EPM's {kind} request list, page {page}, has no data list")
            return
        yield from data
        page_count = folded.get("pagecount")
        if isinstance(page_count, (int, str)) and str(page_count).isdigit():
            if page >= int(page_count):
                return
        elif len(data) < MAX_PAGE_SIZE:
            return
        if not data:
            return
        page += 1
    report.problems.append(f"EPM's {kind} request list did not end after {MAX_PAGES} pages")


def _reconcile_one(kind, record, report, dry_run, actor):
    if not isinstance(record, dict):
        report.problems.append(f"a {kind} record is not an object: {str(record)[:100]}")
        return
    folded = _lookup(record)
    request_id = _value(folded, "request_id")
    if request_id is None:
        report.problems.append(f"a {kind} record has no request id: {str(record)[:200]}")
        return
    request_id = str(request_id).strip()
    decision = final_decision(folded)
    try:
        created_event, created_fields = load_event(_as_text(_created_document(kind, folded)))
        update = load_event(_as_text(_update_document(kind, folded, decision))) if decision else None
    except ValidationError as error:
        report.problems.append(f"{kind} request {request_id}: unusable record ({error.messages})")
        return

    with write_transaction():
        # A webhook for the same request arriving meanwhile waits, then finds the ticket created here.
        lock_request(request_id)
        jit = tickets.find_jit_request(kind, request_id)
        if jit is None:
            ticket = None
            if not dry_run:
                # The intake's own path: the same ticket creation, and any update event that
                # arrived without its created event is applied now.
                task = intake.apply_event(_Reconciled(), created_event, created_fields)["task"]
                tickets.add_work_note(task, f"Ticket reconciled from EPM: its request {request_id} was listed by "
                                            "EPM but its webhook never arrived.")
                jit = tickets.find_jit_request(kind, request_id)
                if update and not jit.decision_final:
                    tickets.finalize_decision(jit, *update)
                ticket = task.number
                audit.record(AUDIT_TICKET_CREATED, actor, "ticket", ticket,
                             {"kind": kind, "request_id": request_id, "epm_decision": decision})
            report.created.append({"kind": kind, "request_id": request_id, "ticket": ticket, "decision": decision})
            return
        if jit.decision_final:
            return
        task = jit.task
        sent = latest_decision(task)
        if decision is None:
            if sent is not None and sent.status == contract.DELIVERY_DELIVERED:
                report.awaiting.append({"kind": kind, "request_id": request_id, "ticket": task.number})
            return
        why = ("the update for the decision sent from here never arrived"
               if sent is not None and sent.status == contract.DELIVERY_DELIVERED
               else "decided in EPM; its update never arrived")
        if not dry_run:
            tickets.finalize_decision(jit, *update)
            tickets.add_work_note(task, f"EPM's final decision reconciled from EPM ({why}).")
            audit.record(AUDIT_DECISION_FINALIZED, actor, "ticket", task.number,
                         {"kind": kind, "request_id": request_id, "epm_decision": decision, "why": why})
        report.finalized.append({"kind": kind, "request_id": request_id, "ticket": task.number,
                                 "decision": decision, "why": why})


def reconcile(client=None, dry_run=False, actor=audit.SYSTEM_ACTOR):
    """Compare EPM's request lists with the broker's tickets and repair the differences; returns a ReconcileReport.

    Each repair is audited as `actor`'s; EpmError and ValueError (unconfigured) propagate; a bad record is reported."""
    client = client or _configured_client()
    report = ReconcileReport(dry_run=dry_run)
    for kind in KINDS:
        for record in _records(client, kind, report):
            report.seen[kind] += 1
            try:
                _reconcile_one(kind, record, report, dry_run, actor)
            except peewee.IntegrityError:
                # A webhook created the same ticket meanwhile (SQLite, or a race the lock
                # cannot see): nothing left to repair for this request.
                log.info("reconcile: %s request already created meanwhile", kind)
    log.info("reconcile: %s", report)
    return report


def reconcile_job():
    """The scheduled reconciliation: skipped (not failed) while the EPM connection is not configured."""
    try:
        client = _configured_client()
    except ValueError as error:
        return f"skipped: {error}"
    return str(reconcile(client))


def _configured_client():
    """The EPM client of the Default configuration; ValueError while the connection is not configured."""
    configuration = Configuration.default()
    return EpmClient.from_configuration(configuration, outbound_call_recorder(configuration),
                                        timeout=current_app.extensions["settings"].epm_timeout_seconds)
