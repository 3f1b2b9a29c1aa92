"""Retention: rows past their period go, in batches; open tickets and what they need stay."""
from dataclasses import replace
from datetime import timedelta

import pytest

from app.audit.models import AuditEntry
from app.configuration import update_configuration
from app.jobs import expiry, retention
from app.jobs.retention import purge
from app.models import ApplicationAccessTicket, IncomingRequest, Task, WorkNote, utcnow
from app.logs.models import AppLog, OutboundCall
from tests import factories


def days(n):
    return timedelta(days=n)


def age_deliveries(task, age):
    IncomingRequest.update(received_at=utcnow() - age).where(IncomingRequest.task == task).execute()


def close(task, age):
    Task.update(state=task.ticket_type.closed_state, closed_at=utcnow() - age).where(Task.id == task.id).execute()


def outbound_call(age):
    return OutboundCall.create(method="POST", url="https://epm/x", path="/x", status=200, duration_ms=12.5, attempt=1,
                               what="token", created_at=utcnow() - age)


TEST_LOGGER = "app.test"


def log_record(at):
    return AppLog.create(level="WARNING", level_number=30, logger=TEST_LOGGER, message="kept a while", created_at=at)


def own_log_records():
    """The ids of the app-log rows this file's tests wrote. Not every row: a thread an earlier test in this
    worker left running (a fake server, a scheduler) may log a warning now, and the writer stores it here."""
    return [row.id for row in AppLog.select().where(AppLog.logger == TEST_LOGGER).order_by(AppLog.id)]


def test_a_row_exactly_as_old_as_its_period_is_kept_and_one_a_second_older_is_purged(app, deliver, make_ticket):
    now = utcnow()
    second = timedelta(seconds=1)
    deliver(factories.admin_decision("waits-for-its-ticket-1"))  # linked to no ticket
    deliver(factories.admin_decision("waits-for-its-ticket-2"))
    kept_delivery, old_delivery = IncomingRequest.select().order_by(IncomingRequest.id)
    IncomingRequest.update(received_at=now - days(90)).where(IncomingRequest.id == kept_delivery.id).execute()
    IncomingRequest.update(received_at=now - days(90) - second).where(IncomingRequest.id == old_delivery.id).execute()
    kept_call, old_call = outbound_call(days(1)), outbound_call(days(1))
    OutboundCall.update(created_at=now - days(30)).where(OutboundCall.id == kept_call.id).execute()
    OutboundCall.update(created_at=now - days(30) - second).where(OutboundCall.id == old_call.id).execute()
    kept_log, _ = log_record(now - days(30)), log_record(now - days(30) - second)
    kept_ticket, old_ticket, open_ticket = make_ticket(), make_ticket(), make_ticket(age=days(3650))
    for task, closed_at in ((kept_ticket, now - days(365)), (old_ticket, now - days(365) - second)):
        Task.update(state=task.ticket_type.closed_state, closed_at=closed_at).where(Task.id == task.id).execute()
    Task.update(updated_at=now - days(3650)).where(Task.id == open_ticket.id).execute()

    report = purge(now=now)

    assert report.counts == {IncomingRequest._meta.table_name: 1, OutboundCall._meta.table_name: 1,
                             AppLog._meta.table_name: 1, "task": 1}
    assert IncomingRequest.get_or_none(IncomingRequest.id == old_delivery.id) is None
    assert IncomingRequest.get_or_none(IncomingRequest.id == kept_delivery.id) is not None
    assert [row.id for row in OutboundCall.select()] == [kept_call.id]
    assert own_log_records() == [kept_log.id]
    assert sorted(task.id for task in Task.select()) == sorted([kept_ticket.id, open_ticket.id])


def test_deliveries_are_kept_for_90_days_by_default(app, deliver):
    deliver(factories.admin_decision("no-such-request"))  # waits for its created event, linked to no ticket
    deliver(factories.admin_decision("another-one"))
    young, old = IncomingRequest.select().order_by(IncomingRequest.id)
    IncomingRequest.update(received_at=utcnow() - days(89)).where(IncomingRequest.id == young.id).execute()
    IncomingRequest.update(received_at=utcnow() - days(91)).where(IncomingRequest.id == old.id).execute()

    report = purge()

    assert report.counts[IncomingRequest._meta.table_name] == 1
    assert [row.id for row in IncomingRequest.select()] == [young.id]


def test_a_delivery_of_an_open_ticket_is_never_purged(app, make_ticket):
    task = make_ticket(age=days(400))
    age_deliveries(task, days(400))
    purge()
    assert IncomingRequest.select().where(IncomingRequest.task == task).count() == 1
    assert Task.get_by_id(task.id)


def test_a_delivery_of_a_closed_ticket_goes_after_its_own_period(app, make_ticket):
    task = make_ticket()
    close(task, days(10))
    age_deliveries(task, days(91))
    purge()
    assert IncomingRequest.select().count() == 0
    assert Task.get_by_id(task.id), "the ticket itself is kept for its own period"


def test_closed_tickets_are_kept_for_365_days_with_everything_they_carry(app, make_ticket):
    recent, expired = make_ticket(), make_ticket()
    close(recent, days(364))
    close(expired, days(366))

    report = purge()

    assert report.counts["task"] == 1
    assert [task.id for task in Task.select()] == [recent.id]
    assert ApplicationAccessTicket.select().count() == 1
    assert WorkNote.select().where(WorkNote.task == expired.id).count() == 0


def test_an_open_ticket_is_never_purged_however_old(app, make_ticket):
    open_task = make_ticket(age=days(2000))
    Task.update(updated_at=utcnow() - days(2000)).where(Task.id == open_task.id).execute()
    on_hold = make_ticket(age=days(2000))
    Task.update(state=on_hold.ticket_type.state_value("On Hold"), updated_at=utcnow() - days(2000),
                closed_at=utcnow() - days(2000)).where(Task.id == on_hold.id).execute()
    purge()
    assert Task.select().count() == 2


def test_canceled_tickets_count_as_closed_but_resolved_ones_do_not(app, make_ticket):
    canceled, resolved = make_ticket(), make_ticket()
    for task, label in ((canceled, "Canceled"), (resolved, "Resolved")):
        Task.update(state=task.ticket_type.state_value(label), closed_at=utcnow() - days(400)).where(
            Task.id == task.id).execute()
    purge()
    assert [task.id for task in Task.select()] == [resolved.id]


def test_outbound_call_logs_are_kept_for_30_days(app):
    kept, gone = outbound_call(days(29)), outbound_call(days(31))
    report = purge()
    assert report.counts[OutboundCall._meta.table_name] == 1
    assert [call.id for call in OutboundCall.select()] == [kept.id]
    assert gone.id not in [call.id for call in OutboundCall.select()]


def test_application_log_records_are_kept_for_30_days(app):
    kept, _ = log_record(utcnow() - days(29)), log_record(utcnow() - days(31))
    report = purge()
    assert report.counts[AppLog._meta.table_name] == 1
    assert own_log_records() == [kept.id]


def test_periods_are_configurable_and_zero_keeps_forever(app, make_ticket):
    update_configuration({"retention_incoming_days": "0", "retention_closed_ticket_days": "7",
                          "retention_app_log_days": "2"})
    task = make_ticket()
    close(task, days(8))
    age_deliveries(task, days(5000))
    log_record(utcnow() - days(3))
    report = purge()
    assert report.counts == {IncomingRequest._meta.table_name: 0, OutboundCall._meta.table_name: 0,
                             AppLog._meta.table_name: 1, "task": 1}
    assert IncomingRequest.select().count() == 1


def test_an_expired_request_goes_with_its_deliveries_once_expired_longer_than_the_period(app, make_ticket):
    task = make_ticket(factories.application_request(), age=days(400))
    assert expiry.expire_pending() == 1  # its state stays active: nobody decided it in time
    age_deliveries(task, days(91))

    report = purge()

    # Over, like a closed ticket: its deliveries go after 90 days, the ticket itself 365 days after it expired.
    assert report.counts[IncomingRequest._meta.table_name] == 1 and report.counts["task"] == 0
    assert IncomingRequest.select().where(IncomingRequest.task == task).count() == 0
    Task.update(expired_at=utcnow() - days(365) - timedelta(seconds=1)).where(Task.id == task.id).execute()
    assert purge().counts["task"] == 1
    assert Task.get_or_none(Task.id == task.id) is None
    assert ApplicationAccessTicket.select().count() == 0 and WorkNote.select().count() == 0


def test_a_ticket_closed_after_it_expired_is_kept_for_the_period_from_its_closing(app, make_ticket):
    task = make_ticket(factories.application_request(), age=days(800))
    Task.update(expired_at=utcnow() - days(700)).where(Task.id == task.id).execute()
    close(task, days(10))
    assert purge().counts["task"] == 0
    assert Task.get_or_none(Task.id == task.id) is not None


def test_purging_works_through_many_small_batches(app):
    for _ in range(7):
        outbound_call(days(40))
    assert purge(batch_size=2).counts[OutboundCall._meta.table_name] == 7
    assert OutboundCall.select().count() == 0


def test_a_dry_run_counts_without_deleting(app):
    outbound_call(days(40))
    report = purge(dry_run=True)
    assert report.counts[OutboundCall._meta.table_name] == 1 and OutboundCall.select().count() == 1


def test_a_purge_is_audited(app):
    outbound_call(days(40))
    purge(actor="cli:ops")
    entry = AuditEntry.get(AuditEntry.action == "retention_purge")
    assert entry.actor == "cli:ops" and entry.detail["deleted"] == 1


def test_each_batch_is_audited_with_its_own_deletions(app):
    for _ in range(5):
        outbound_call(days(40))
    purge(batch_size=2)
    entries = AuditEntry.select().where(AuditEntry.action == "retention_purge").order_by(AuditEntry.id)
    assert [entry.detail["deleted"] for entry in entries] == [2, 2, 1]


def test_a_purge_stopped_between_batches_leaves_no_deletion_unaudited(app, monkeypatch):
    for _ in range(5):
        outbound_call(days(40))
    batches = []

    def delete_then_stop(ids):
        batches.append(ids)
        if len(batches) == 2:
            raise RuntimeError("the scheduler host lost power")
        return OutboundCall.delete().where(OutboundCall.id.in_(ids)).execute()

    monkeypatch.setattr(retention, "RULES", tuple(
        replace(rule, delete=delete_then_stop) if rule.table == OutboundCall._meta.table_name else rule
        for rule in retention.RULES))
    with pytest.raises(RuntimeError):
        purge(batch_size=2)

    assert OutboundCall.select().count() == 3
    [entry] = AuditEntry.select().where(AuditEntry.action == "retention_purge")
    assert entry.detail["deleted"] == 2 and entry.object_id == OutboundCall._meta.table_name


def test_the_purge_command_prints_counts_per_table(app, runner, make_ticket):
    outbound_call(days(40))
    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0
    assert f"{OutboundCall._meta.table_name}: would delete 1" in dry.output
    assert f"{IncomingRequest._meta.table_name}: would delete 0" in dry.output and "task: would delete 0" in dry.output
    assert f"{OutboundCall._meta.table_name}: deleted 1" in runner.invoke(args=["purge"]).output
