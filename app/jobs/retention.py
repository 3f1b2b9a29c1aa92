"""Retention: delete what is older than the configuration's periods keep (0 keeps forever), in small batches.

An open ticket, or one whose decision is still on its way to EPM, is never deleted; Resolved is not terminal
(it can be reopened). A deleted ticket's RequestId is kept (PurgedRequest), so its request never gets a second
ticket. Each batch is its own short transaction, so a purge never holds the intake up for long. Each run also
logs the audit chain's head hash, to be anchored outside the database."""
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import peewee

from app import contract
from app.audit import service as audit
from app.chat.models import ChatPost
from app.db import write_transaction
from app.logs.models import AppLog, OutboundCall
from app.models import (
    AdminTicket, ApplicationAccessTicket, Configuration, Decision, IncomingRequest, PurgedRequest, Task, WorkNote,
    utcnow,
)
from app.notify.models import Notification

log = logging.getLogger(__name__)

BATCH_SIZE = 500
AUDIT_ACTION = "retention_purge"
TABLE_INCOMING = IncomingRequest._meta.table_name
TABLE_OUTBOUND = OutboundCall._meta.table_name
TABLE_APP_LOG = AppLog._meta.table_name
TABLE_TICKETS = Task._meta.table_name


def terminal_states(ticket_type):
    """The states of `ticket_type` after which nothing more happens to a ticket."""
    return {ticket_type.closed_state} | {value for value, label in ticket_type.states
                                         if label.startswith(("Closed", "Canceled"))}


def is_closed(task):
    return task.state in terminal_states(task.ticket_type)


def _closed_condition():
    condition = None
    for ticket_type in contract.TICKET_TYPES.values():
        clause = (Task.sys_class_name == ticket_type.table) & Task.state.in_(sorted(terminal_states(ticket_type)))
        condition = clause if condition is None else condition | clause
    return condition


def _over_condition():
    """Tickets that are over: closed or canceled, or expired without a decision (app/jobs/expiry.py), whose state
    stays active but which nobody can decide any more."""
    return _closed_condition() | Task.expired_at.is_null(False)


def _incoming_candidates(cutoff):
    over_tasks = Task.select(Task.id).where(_over_condition())
    return (IncomingRequest.select(IncomingRequest.id)
            .where(IncomingRequest.received_at < cutoff,
                   IncomingRequest.task.is_null() | IncomingRequest.task.in_(over_tasks)))


def _log_candidates(model):
    return lambda cutoff: model.select(model.id).where(model.created_at < cutoff)


def _log_deleter(model):
    return lambda ids: model.delete().where(model.id.in_(ids)).execute()


def _ticket_candidates(cutoff):
    in_flight = (Decision.select(Decision.task)
                 .where(Decision.status.in_([contract.DELIVERY_PENDING, contract.DELIVERY_SENDING])))
    # Gone once over for longer than the period: since it closed, or, never closed, since it expired.
    closed = _closed_condition()
    over_before = ((closed & (peewee.fn.COALESCE(Task.closed_at, Task.updated_at) < cutoff))
                   | (~closed & (Task.expired_at < cutoff)))
    return Task.select(Task.id).where(over_before, Task.id.not_in(in_flight))


def _delete_incoming(ids):
    return IncomingRequest.delete().where(IncomingRequest.id.in_(ids)).execute()


def _delete_tickets(ids):
    # Each request's RequestId stays known (PurgedRequest): EPM may send it again or list it, and a new ticket
    # would have approvers decide it twice.
    purged_at = utcnow()
    purged = [(*row, purged_at) for row in Task.select(Task.request_id, Task.kind, Task.number)
              .where(Task.id.in_(ids)).tuples()]
    if purged:
        PurgedRequest.insert_many(purged, fields=[PurgedRequest.request_id, PurgedRequest.kind, PurgedRequest.number,
                                                  PurgedRequest.purged_at]).on_conflict_ignore().execute()
    # Dependents first, explicitly, so the purge does not rely on every database
    # enforcing ON DELETE CASCADE; deliveries outlive their ticket (their own period).
    Notification.delete().where(Notification.task.in_(ids)).execute()
    ChatPost.delete().where(ChatPost.task.in_(ids)).execute()
    Decision.delete().where(Decision.task.in_(ids)).execute()
    WorkNote.delete().where(WorkNote.task.in_(ids)).execute()
    ApplicationAccessTicket.delete().where(ApplicationAccessTicket.task.in_(ids)).execute()
    AdminTicket.delete().where(AdminTicket.task.in_(ids)).execute()
    IncomingRequest.update(task=None).where(IncomingRequest.task.in_(ids)).execute()
    return Task.delete().where(Task.id.in_(ids)).execute()


@dataclass(frozen=True)
class RetentionRule:
    table: str
    setting: str
    candidates: object  # cutoff -> a query selecting ids, or None when the table does not exist
    delete: object      # list of ids -> rows deleted


RULES = (
    RetentionRule(TABLE_INCOMING, "retention_incoming_days", _incoming_candidates, _delete_incoming),
    RetentionRule(TABLE_OUTBOUND, "retention_outbound_days", _log_candidates(OutboundCall), _log_deleter(OutboundCall)),
    RetentionRule(TABLE_APP_LOG, "retention_app_log_days", _log_candidates(AppLog), _log_deleter(AppLog)),
    RetentionRule(TABLE_TICKETS, "retention_closed_ticket_days", _ticket_candidates, _delete_tickets),
)


@dataclass
class PurgeReport:
    """Rows deleted (or, with dry_run, that would be) per table, and each table's cutoff."""

    dry_run: bool = False
    counts: dict = field(default_factory=dict)
    cutoffs: dict = field(default_factory=dict)

    @property
    def total(self):
        return sum(self.counts.values())

    def lines(self):
        verb = "would delete" if self.dry_run else "deleted"
        lines = []
        for table, count in self.counts.items():
            cutoff = self.cutoffs.get(table)
            kept = f"older than {cutoff:%Y-%m-%d %H:%M} UTC" if cutoff else "kept forever (retention 0)"
            lines.append(f"{table}: {verb} {count} ({kept})")
        return lines

    def __str__(self):
        prefix = "dry run: " if self.dry_run else ""
        return prefix + ", ".join(f"{table} {count}" for table, count in self.counts.items())


def purge(dry_run=False, now=None, batch_size=BATCH_SIZE, actor=audit.SYSTEM_ACTOR):
    """Delete every row past its retention period, `batch_size` rows a transaction; returns a PurgeReport."""
    configuration = Configuration.default()
    now = now or utcnow()
    report = PurgeReport(dry_run=dry_run)
    for rule in RULES:
        days = getattr(configuration, rule.setting)
        report.counts[rule.table] = 0
        if not days:
            report.cutoffs[rule.table] = None
            continue
        cutoff = now - timedelta(days=days)
        report.cutoffs[rule.table] = cutoff
        if dry_run:
            report.counts[rule.table] = rule.candidates(cutoff).count()
            continue
        while True:
            with write_transaction():
                ids = [row.id for row in rule.candidates(cutoff).limit(batch_size)]
                if not ids:
                    break
                deleted = rule.delete(ids)
                report.counts[rule.table] += deleted
                # In the batch's own transaction: the rows go with their audit entry, or neither does, so a
                # purge stopped between batches leaves no deletion unaudited.
                audit.record(AUDIT_ACTION, actor, "table", rule.table,
                             {"deleted": deleted, "older_than": cutoff, "retention_days": days})
            if len(ids) < batch_size:
                break
    if report.total:
        log.info("retention purge: %s", report)
    if not dry_run:
        log_audit_head()
    return report


def log_audit_head():
    """Write the audit chain's newest entry and hash to the app log, so it can be kept (anchored) elsewhere:
    an entry deleted from the end of the chain leaves one that still verifies, but not this head."""
    head = audit.head()
    if head is None:
        log.info("audit chain head: no entries yet")
    else:
        log.info("audit chain head: entry %s, hash %s, key id %s", head.id, head.entry_hash, head.key_id)
