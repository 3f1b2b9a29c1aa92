"""Requests nobody decided in time: the expiry job marks them, notes why in their history, and a decision
on one is refused."""
from dataclasses import replace
from datetime import timedelta

from app import contract
from app.decisions import approvals
from app.decisions.service import MSG_EXPIRED
from app.errors import Conflict
from app.jobs import expiry
from app.jobs.registry import JOBS, run_job
from app.models import Decision, Task, WorkNote, utcnow
from tests import factories


def old_request(make_ticket, hours):
    return make_ticket(factories.application_request(), age=timedelta(hours=hours))


def expired_at(task):
    return Task.get_by_id(task.id).expired_at


def notes(task):
    return [note.text for note in WorkNote.select().where(WorkNote.task == task.id)]


def test_undecided_request_past_the_setting_is_marked_expired_with_a_note(app, make_ticket):
    old, recent = old_request(make_ticket, 25), old_request(make_ticket, 23)
    assert expiry.expire_pending() == 1
    assert expired_at(old) is not None
    assert expired_at(recent) is None
    assert expiry.expiry_note(24) in notes(old)
    assert "Expired: no decision within 24 hours of the request." in expiry.expiry_note(24)
    assert expiry.expire_pending() == 0  # once
    assert notes(old).count(expiry.expiry_note(24)) == 1


def test_decided_final_and_closed_requests_do_not_expire(app, make_ticket):
    decided, final, closed = (old_request(make_ticket, 48) for _ in range(3))
    Decision.create(task=decided, decision=contract.DECISION_APPROVED, reason="ok", decided_by="jchen",
                    ticket_url="x", status=contract.DELIVERY_PENDING)
    model = type(final.jit_request)
    model.update(decision_final=True, final_decision=contract.DECISION_DENIED).where(model.task == final).execute()
    Task.update(state=contract.INCIDENT.closed_state).where(Task.id == closed.id).execute()
    assert expiry.expire_pending() == 0
    assert [expired_at(task) for task in (decided, final, closed)] == [None, None, None]


def test_a_request_whose_decision_epm_refused_for_good_still_expires(app, make_ticket):
    refused = old_request(make_ticket, 30)
    Decision.create(task=refused, decision=contract.DECISION_APPROVED, reason="ok", decided_by="jchen",
                    ticket_url="x", status=contract.DELIVERY_FAILED, last_status=400,
                    last_error="EPM rejected the Application Access decision (HTTP 400)")
    assert expiry.expire_pending() == 1  # the refusal left it to be decided again, and nobody did in time
    assert expired_at(refused) is not None
    assert expiry.expiry_note(24) in notes(refused)


def test_expiry_follows_the_setting_and_zero_never_expires(app, make_ticket):
    old = old_request(make_ticket, 5)
    settings = app.extensions["settings"]
    app.extensions["settings"] = replace(settings, expire_pending_hours=0)
    assert expiry.expire_pending() == 0
    app.extensions["settings"] = replace(settings, expire_pending_hours=4)
    assert expiry.expire_pending() == 1
    assert expiry.expiry_note(4) in notes(old)


def test_expiry_runs_as_a_scheduled_job(app, make_ticket):
    old = old_request(make_ticket, 30)
    outcome = run_job(JOBS["expire_pending"])
    assert outcome.ran and outcome.error is None and outcome.result == 1
    assert expired_at(old) is not None


def test_a_decision_on_an_expired_request_is_refused(app, make_ticket, approver):
    old = old_request(make_ticket, 30)
    expiry.expire_pending()
    try:
        approvals.submit_decision(Task.get_by_id(old.id), approver, contract.DECISION_APPROVED, "Needed", "once")
    except Conflict as refusal:
        assert refusal.message == MSG_EXPIRED
    else:
        raise AssertionError("an expired request took a decision")
    assert Decision.select().count() == 0


def test_the_decision_form_on_an_expired_request_says_why(as_approver, make_ticket):
    old = old_request(make_ticket, 30)
    expiry.expire_pending()
    response = as_approver.post(f"/tickets/{old.number}/approve", {"reason": "Needed", "duration_unit": "once"})
    assert response.status_code == 409
    assert "This request expired without a decision" in response.get_data(as_text=True)
    assert Decision.select().count() == 0


def test_an_expired_request_leaves_awaiting_decision(as_approver, make_ticket):
    old = old_request(make_ticket, 23)
    page = as_approver.get("/tickets").get_data(as_text=True)
    assert old.number in page
    Task.update(opened_at=utcnow() - timedelta(hours=25)).where(Task.id == old.id).execute()
    expiry.expire_pending()
    assert old.number not in as_approver.get("/tickets").get_data(as_text=True)
    assert old.number in as_approver.get("/tickets?decision=expired").get_data(as_text=True)


def test_init_adds_the_expiry_column_keeping_the_tickets(app, runner, make_ticket):
    from playhouse.migrate import SchemaMigrator, migrate

    from app.db import database
    from app.models import SchemaVersion

    task = make_ticket(factories.application_request())
    migrate(SchemaMigrator.from_database(database.obj).drop_column(Task._meta.table_name, "expired_at"))
    SchemaVersion.delete().where(SchemaVersion.version == 20).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: requests left undecided too long are marked expired" in result.output
    assert expired_at(task) is None and Task.get_by_id(task.id).number == task.number


def test_the_expiry_setting_reads_from_the_tickets_section(tmp_path):
    from app.settings import Settings

    path = tmp_path / "config.toml"
    path.write_text("[tickets]\nexpire_pending_hours = 8\n")
    assert Settings.load(environ={"JITBROKER_CONFIG": str(path)}).expire_pending_hours == 8
    assert Settings.load(environ={}).expire_pending_hours == 24


def test_an_expiry_setting_beyond_ten_years_is_refused_with_its_bounds(tmp_path):
    from app.settings import MAX_EXPIRE_PENDING_HOURS, Settings, SettingsError

    path = tmp_path / "config.toml"
    path.write_text(f"[tickets]\nexpire_pending_hours = {MAX_EXPIRE_PENDING_HOURS}\n")
    assert Settings.load(environ={"JITBROKER_CONFIG": str(path)}).expire_pending_hours == 87600
    for hours in (100_000_000, MAX_EXPIRE_PENDING_HOURS + 1, -1):
        path.write_text(f"[tickets]\nexpire_pending_hours = {hours}\n")
        try:
            Settings.load(environ={"JITBROKER_CONFIG": str(path)})
        except SettingsError as refusal:
            assert str(refusal) == ("[tickets] expire_pending_hours must be 0 (never) to 87600 hours (10 years), "
                                    f"not {hours}")
        else:
            raise AssertionError(f"expire_pending_hours = {hours} was taken")
