"""Reconciliation with EPM: create the tickets and record the final decisions that lost webhooks left out;
and "Check with EPM", the same repair for one ticket on request. A request whose ticket retention deleted
is left alone.

EPM's records are read as contract/epm.md §5 shows them (app/epm/records.py) and turned into the webhooks EPM
would have sent, so the intake's schemas and ticket service do the rest. Running it again changes nothing,
and nothing is deleted or reopened."""
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
from app.epm import records
from app.epm.client import MAX_PAGE_SIZE, EpmClient
from app.epm.errors import EpmRejected
from app.fields import clipped
from app.intake import service as intake
from app.intake.epm_records import as_text, decision_event, finalize_from_record
from app.intake.schemas import load_event, storable
from app.logs.outbound import outbound_call_recorder
from app.models import Configuration, PurgedRequest, utcnow
from app.tickets import service as tickets

log = logging.getLogger(__name__)

AUDIT_TICKET_CREATED = "reconcile_ticket_created"
AUDIT_DECISION_FINALIZED = "reconcile_decision_finalized"
AUDIT_CHECKED = "epm_check"
# A tenant with more pages than this is a paging loop (EPM ignoring PageNumber), not data.
MAX_PAGES = 5000
# The problems a scheduled run keeps in its last result (`jitbroker jobs status`); the log has each one.
PROBLEMS_KEPT = 20
PROBLEM_LENGTH = 300
UNREADABLE_RECORD = "EPM's record of the request could not be read"
KINDS = (contract.KIND_APPLICATION, contract.KIND_ADMIN)
CREATED_EVENT = {contract.KIND_APPLICATION: contract.URM_TICKET_CREATED, contract.KIND_ADMIN:
                 contract.ADMIN_TICKET_CREATED}


@dataclass
class ReconcileReport:
    """What a reconciliation found and changed (or, with dry_run, would change)."""

    dry_run: bool = False
    seen: dict = field(default_factory=lambda: {kind: 0 for kind in KINDS})
    created: list = field(default_factory=list)     # {kind, request_id, ticket, decision}
    finalized: list = field(default_factory=list)   # {kind, request_id, ticket, decision, why}
    awaiting: list = field(default_factory=list)    # decisions delivered here that EPM still shows pending
    problems: list = field(default_factory=list)    # records or pages that could not be used

    def problem(self, text):
        """Note a record or page that could not be used; each is logged at WARNING for the operator."""
        self.problems.append(text)
        log.warning("reconcile%s: %s", " (dry run)" if self.dry_run else "", text)

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

    def result(self):
        """The totals, then the first PROBLEMS_KEPT problems: what a scheduled run keeps as its last result."""
        lines = [str(self)] + [f"Problem: {problem[:PROBLEM_LENGTH]}" for problem in self.problems[:PROBLEMS_KEPT]]
        if len(self.problems) > PROBLEMS_KEPT:
            lines.append(f"... and {len(self.problems) - PROBLEMS_KEPT} more problems (each is in the app log)")
        return "\n".join(lines)


def _created_document(record, tenant_id):
    """The created webhook EPM would have sent for this record, so the intake's schema reads it; an Application
    ticket keeps the record's whole requestInfo, unknown keys included. Records carry no tenant: the one
    configured, whose API listed them, is the ticket's."""
    common = {"EventType": CREATED_EVENT[record.kind].name, "RequestId": record.request_id, "TenantId": tenant_id,
              "Timestamp": record.created, "TicketNumber": record.epm_ticket_number}
    if record.kind == contract.KIND_APPLICATION:
        info = record.request_info
        for key, value in (("user", record.user), ("hostName", record.host), ("reason", record.reason)):
            if records.text(info.get(key)) is None:
                info[key] = value
        return {**common, "requestInfo": info}
    return {**common, "ComputerId": record.computer_id or record.host, "Reason": record.reason,
            "UserId": record.user_id, "UserName": record.user, "DurationRequested": record.duration_requested}


class _Reconciled:
    """The intake's `delivery` for a created event rebuilt from EPM's list: nothing arrived, so
    nothing is stored as a delivery; the outcome is only handed back."""

    def record(self, **values):
        return values


def _records(client, kind, report):
    """Every record EPM lists for `kind`, page after page (contract/epm.md §5.10): stops on an empty page,
    at pageCount, or once totalRecordCount records were read, whichever comes first."""
    page, read = 1, 0
    while page <= MAX_PAGES:
        document = client.list_requests(kind, page_size=MAX_PAGE_SIZE, page_number=page)
        data = records.page_records(document)
        if data is None:
            report.problem(f"EPM's {kind} request list, page {page}, has no data list")
            return
        if not data:
            return
        yield from data
        read += len(data)
        page_count, total = records.page_totals(document)
        if (page_count is not None and page >= page_count) or (total is not None and read >= total):
            return
        page += 1
    report.problem(f"EPM's {kind} request list did not end after {MAX_PAGES} pages")


def _reconcile_one(kind, raw, configuration, report, dry_run, actor):
    try:
        read = _read_one(kind, raw, configuration, report)
    except Exception as error:  # noqa: BLE001 - one record must not stop the others
        # Reading touches no database: whatever fails here (a count too long to read as a number, a record
        # nested deeper than Python's stack) is this record's alone.
        log.debug("reconcile: a %s record could not be read", kind, exc_info=True)
        report.problem(f"{_which(kind, raw)}: unreadable record "
                       f"({error.__class__.__name__}: {clipped(str(error), 200)})")
        return
    if read is None:
        return
    record, created, update = read
    request_id = record.request_id
    try:
        _repair(kind, record, created, update, report, dry_run, actor)
    except (peewee.IntegrityError, peewee.OperationalError, peewee.InterfaceError):
        raise  # a ticket created meanwhile (the caller's to tell), or the database itself, which fails every record
    except Exception as error:  # noqa: BLE001 - one record must not stop the others
        log.debug("reconcile: %s request %s failed", kind, request_id, exc_info=True)
        report.problem(f"{kind} request {request_id}: could not be reconciled "
                       f"({error.__class__.__name__}: {clipped(str(error), 200)})")


def _read_one(kind, raw, configuration, report):
    """(RequestRecord, created event, update event or None) of one listed record, or None when it cannot be
    used (reported)."""
    raw = storable(raw)  # as a webhook's text is: no database stores a NUL
    if not isinstance(raw, dict):
        report.problem(f"a {kind} record is not an object: {clipped(str(raw), 100)}")
        return None
    record = records.read_record(kind, raw, records.StatusMapping.of(configuration))
    request_id = record.request_id
    if request_id is None:
        report.problem(f"a {kind} record has no request id: {clipped(str(raw), 200)}")
        return None
    try:
        created = load_event(as_text(_created_document(record, configuration.tenant_id)))
        update = decision_event(record, request_id)
    except ValidationError as error:
        report.problem(f"{kind} request {request_id}: unusable record ({error.messages})")
        return None
    return record, created, update


def _which(kind, raw):
    """The request a listed record names, for a problem with it, as far as it can be told."""
    request_id = records.first_text(raw, records.PATHS[kind]["request_id"])
    return f"a {kind} record" if request_id is None else f"{kind} request {clipped(storable(request_id), 100)}"


def _repair(kind, record, created, update, report, dry_run, actor):
    """Create the ticket EPM's `record` shows, or record the decision it shows, in one transaction of its own (or
    a savepoint), so a failure undoes this record's repair alone. `created` is the created event's (event, fields)."""
    request_id, decision = record.request_id, record.decision
    created_event, created_fields = created
    with write_transaction():
        # A webhook for the same request arriving meanwhile waits, then finds the ticket created here.
        lock_request(request_id)
        jit = tickets.find_jit_request(kind, request_id)
        if jit is None and PurgedRequest.find(kind, request_id) is not None:
            # Its closed ticket was deleted by retention, and EPM still lists it: nothing was lost, and a new
            # ticket would have approvers decide it again.
            return
        if jit is None:
            ticket = None
            if not dry_run:
                # The intake's own path: the same ticket creation, and any update event that
                # arrived without its created event is applied now.
                task = intake.apply_event(_Reconciled(), created_event, created_fields)["task"]
                tickets.add_work_note(task, f"Ticket reconciled from EPM: its request {request_id} was listed by "
                                            "EPM but its webhook never arrived.")
                finalize_from_record(tickets.find_jit_request(kind, request_id), update, record, utcnow())
                ticket = task.number
                audit.record(AUDIT_TICKET_CREATED, actor, "ticket", ticket,
                             {"kind": kind, "request_id": request_id, "epm_decision": decision})
            report.created.append({"kind": kind, "request_id": request_id, "ticket": ticket, "decision": decision})
            return
        task = jit.task
        if jit.decision_final:
            _later_state(jit, update, record, report, dry_run, actor)
            return
        sent = latest_decision(task)
        if decision is None:
            if sent is not None and sent.status == contract.DELIVERY_DELIVERED:
                report.awaiting.append({"kind": kind, "request_id": request_id, "ticket": task.number})
            return
        why = ("the update for the decision sent from here never arrived"
               if sent is not None and sent.status == contract.DELIVERY_DELIVERED
               else "decided in EPM; its update never arrived")
        if not dry_run:
            finalize_from_record(jit, update, record, utcnow())
            tickets.add_work_note(task, f"EPM's final decision reconciled from EPM ({why}).")
            audit.record(AUDIT_DECISION_FINALIZED, actor, "ticket", task.number,
                         {"kind": kind, "request_id": request_id, "epm_decision": decision, "why": why})
        report.finalized.append({"kind": kind, "request_id": request_id, "ticket": task.number,
                                 "decision": decision, "why": why})


def _later_state(jit, update, record, report, dry_run, actor):
    """A final ticket whose record in EPM shows a later state (contract/epm.md 5.3) whose update never arrived, or
    an older one telling what the later state was (an approval listed after its revocation came: Revoked), as its
    webhook would (tickets.later_effect)."""
    effect = None if update is None else tickets.later_effect(jit, *update)
    if effect is None:
        return
    task, kept = jit.task, jit.final_decision
    before = {name: getattr(jit, name) for name in (*tickets.DECISION_COLUMNS, "epm_outcome")}
    filled = _filled_in(before, tickets.read_update(*update)[0])
    if effect == tickets.UPDATE_OLDER:
        why = f"EPM shows {record.decision}, older than the {kept} the ticket holds"
    elif effect == tickets.UPDATE_NEWER and record.decision == kept and filled:
        # The ticket's own update arrived, only without these values: nothing was lost but them.
        why = f"EPM's record has the {_listed(filled)} the ticket lacked"
    elif record.decision == kept:
        why = f"EPM shows a later state of the {kept} decision the ticket holds; its update never arrived"
    else:
        why = f"EPM shows {record.decision} where the ticket holds {kept}; its update never arrived"
    if not dry_run:
        effect = finalize_from_record(jit, update, record, utcnow())
        if effect is None:
            return  # a conflict already recorded
        why = f"{why}: {_what_the_record_did(jit, effect, before)}"
        audit.record(AUDIT_DECISION_FINALIZED, actor, "ticket", task.number,
                     {"kind": task.kind, "request_id": jit.request_id, "epm_decision": record.decision, "why": why})
    report.finalized.append({"kind": task.kind, "request_id": jit.request_id, "ticket": task.number,
                             "decision": record.decision, "why": why})


# The decision columns a later record can fill in, as a person names them.
FILLED_IN_WORDS = {"final_decision_by": "decider", "final_decision_time": "decision time",
                   "final_duration": "duration", "final_start_time": "start time", "final_end_time": "end time"}


def _filled_in(before, values):
    """The decision columns (as a person names them) that `values` has and the ticket's columns `before` lacked."""
    return [words for name, words in FILLED_IN_WORDS.items() if before[name] is None and values.get(name) is not None]


def _listed(words):
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _what_the_record_did(jit, effect, before):
    """What applying EPM's record (finalize_from_record's `effect`) did to `jit`, whose decision columns and EPM
    outcome were `before`: the outcome the ticket now reads, the conflict kept beside its decision, or the values
    the ticket lacked, filled in."""
    if effect == tickets.UPDATE_OLDER:
        return f"the ticket reads {jit.epm_outcome}"
    if effect == tickets.UPDATE_CONFLICT:
        return "kept as a conflict"
    if jit.epm_outcome != before["epm_outcome"]:
        return jit.epm_outcome
    if _filled_in(before, {name: getattr(jit, name) for name in FILLED_IN_WORDS}):
        return "filled them in"
    return f"recorded as the newer state, the ticket reads {jit.epm_outcome or jit.final_decision}"


def reconcile(client=None, dry_run=False, actor=audit.SYSTEM_ACTOR):
    """Compare EPM's request lists with the broker's tickets and repair the differences; returns a ReconcileReport.

    Each repair is audited as `actor`'s; EpmError and ValueError (unconfigured) propagate, and so does a database
    that cannot be reached. A record that cannot be used or repaired is reported (each in its own transaction,
    undone alone) and the others are reconciled."""
    client = client or _configured_client()
    configuration = Configuration.default()
    report = ReconcileReport(dry_run=dry_run)
    for kind in KINDS:
        for record in _records(client, kind, report):
            report.seen[kind] += 1
            try:
                _reconcile_one(kind, record, configuration, report, dry_run, actor)
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
    return reconcile(client).result()


@dataclass(frozen=True)
class CheckResult:
    """What "Check with EPM" found: EPM's record (None when EPM does not know the request), the work note
    written, the decision finalized from it (or None) and why a decision EPM shows could not be used."""

    record: object
    note: str
    finalized: str = None
    problem: str = None


def check_with_epm(task, actor, client=None):
    """Read `task`'s request from EPM and record what EPM says on the ticket (a work note, the record and when it
    was read, an audit entry as `actor`); a final decision EPM shows that the ticket lacks is finalized as
    reconciliation does. EpmError, and ValueError while EPM is not configured, propagate with nothing changed."""
    client = client or _configured_client()
    request_id = task.request_id
    record = _read_request(client, task.kind, request_id)
    update, problem = None, None
    if record is not None:
        try:
            update = decision_event(record, request_id)
        except ValidationError as error:
            problem = f"EPM's decision could not be read from its record ({error.messages})"
    note = f"Checked with EPM: {records.describe(record, request_id)}."
    if problem:
        note = f"{note} {problem}."
    with write_transaction():
        lock_request(request_id)
        jit = tickets.find_jit_request(task.kind, request_id)
        when = utcnow()
        finalized = None
        tickets.add_work_note(task, note)
        if record is None:
            jit.epm_record, jit.epm_checked_at = None, when
            jit.save(only=[type(jit).epm_record, type(jit).epm_checked_at])
        # An older state than the ticket's decides nothing: its own work note tells what the ticket now reads.
        elif finalize_from_record(jit, update, record, when) not in (None, tickets.UPDATE_OLDER):
            finalized = record.decision
            tickets.add_work_note(task, "EPM's decision recorded from its record, read by Check with EPM.")
        audit.record(AUDIT_CHECKED, actor, "ticket", task.number,
                     {"kind": task.kind, "request_id": request_id, "found": record is not None,
                      "status": record and record.status, "epm_decision": record and record.decision,
                      "finalized": finalized})
    return CheckResult(record, note, finalized, problem)


def _read_request(client, kind, request_id):
    """EPM's record of one request as a RequestRecord, its text made storable as a webhook's is (no database
    stores a NUL); None when EPM does not know the request. A record nested deeper than Python's stack is
    EpmRejected, so the check changes nothing."""
    try:
        raw = storable(client.get_request(kind, request_id))
    except RecursionError:
        raise EpmRejected(f"{UNREADABLE_RECORD}: it nests its arrays and objects too deeply.") from None
    return None if raw is None else records.read_record(kind, raw, records.StatusMapping.of(Configuration.default()))


def _configured_client():
    """The EPM client of the Default configuration; ValueError while the connection is not configured."""
    configuration = Configuration.default()
    return EpmClient.from_configuration(configuration, outbound_call_recorder(configuration),
                                        timeout=current_app.extensions["settings"].epm_timeout_seconds)
