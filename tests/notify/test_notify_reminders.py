"""SLA reminders: once per ticket that waits longer than the configured minutes for a decision."""
from datetime import timedelta

import pytest

from app import contract
from app.configuration import update_configuration
from app.jobs.registry import JOBS, run_job
from app.models import Decision, utcnow
from app.notify.models import KIND_SLA_REMINDER, KIND_TICKET_CREATED, STATUS_SENT, STATUS_SKIPPED, Notification


@pytest.fixture
def sla(app, mail_configured, make_approver):
    update_configuration({"sla_minutes": "30"})
    make_approver("ana", "ana@example.com")
    return mail_configured


def reminders():
    return Notification.select().where(Notification.kind == KIND_SLA_REMINDER)


def run(name):
    return run_job(JOBS[name]).result


def test_a_ticket_waiting_past_the_sla_gets_one_reminder(sla, make_ticket):
    late = make_ticket(age=timedelta(minutes=31))
    make_ticket(age=timedelta(minutes=29))

    assert run("sla_reminders") == 1
    assert run("sla_reminders") == 0
    assert [n.task.id for n in reminders()] == [late.id]

    run("send_notifications")
    subjects = [message["Subject"] for _recipients, message in sla.handler.received()]
    assert sum("Reminder" in subject and late.number in subject for subject in subjects) == 1
    assert reminders().get().status == STATUS_SENT
    run("sla_reminders")
    run("send_notifications")
    assert len(sla.handler.received()) == len(subjects), "a reminder is sent once"


def test_a_decided_ticket_gets_no_reminder(sla, make_ticket):
    task = make_ticket(age=timedelta(hours=2))
    Decision.create(task=task, decision=contract.DECISION_APPROVED, reason="ok", decided_by="ana", ticket_url="x",
                    status=contract.DELIVERY_DELIVERED)
    assert run("sla_reminders") == 0


def test_a_closed_ticket_gets_no_reminder(sla, make_ticket):
    task = make_ticket(age=timedelta(hours=2))
    task.state = task.ticket_type.closed_state
    task.save()
    assert run("sla_reminders") == 0


def test_an_expired_ticket_gets_no_reminder(sla, make_ticket):
    # A reminder longer than the expiry (or one switched on later) finds tickets EPM no longer waits on.
    task = make_ticket(age=timedelta(hours=2))
    task.expired_at = utcnow()
    task.save()
    assert run("sla_reminders") == 0
    assert not reminders().exists()


def test_reminders_are_off_at_zero_minutes(app, mail_configured, make_ticket):
    make_ticket(age=timedelta(days=3))
    assert run("sla_reminders") == 0
    assert not reminders().exists()
    assert Notification.select().where(Notification.kind == KIND_TICKET_CREATED).count() == 1


def test_a_reminder_held_up_until_the_ticket_was_decided_is_skipped(sla, make_ticket):
    task = make_ticket(age=timedelta(hours=2))
    assert run("sla_reminders") == 1
    Decision.create(task=task, decision=contract.DECISION_DENIED, reason="no", decided_by="ana", ticket_url="x",
                    status=contract.DELIVERY_PENDING)  # decided before the reminder could go: on its way to EPM

    run("send_notifications")

    assert not any("Reminder" in message["Subject"] for _recipients, message in sla.handler.received())
    reminder = reminders().get()
    assert reminder.status == STATUS_SKIPPED
    assert reminder.last_error == ("the ticket no longer awaits a decision: "
                                   f"{contract.MSG_DECISION_IN_FLIGHT}: Denied by ana")
