"""Replaying a stored delivery: a dry run says what would change and changes nothing; a replay applies it."""
import json
import logging
import re

import pytest

from app import contract
from app.audit.models import AuditEntry
from app.db import write_transaction
from app.intake.schemas import load_event, parse_json_object
from app.models import AdminTicket, ApplicationAccessTicket, IncomingRequest, Task, WorkNote, utcnow
from app.ops import replay as replays
from app.tickets import service as tickets
from tests import factories
from tests.outcomes import assert_outcome_kept
from tests.webclient import CONFIRMED


@pytest.fixture
def unknown_admin_delivery(deliver, monkeypatch):
    """An Admin Access request stored as an error while its event type was unknown to the broker."""
    body = factories.admin_request()
    with monkeypatch.context() as unknown:
        unknown.delitem(contract.EVENT_TYPES, contract.ADMIN_TICKET_CREATED.name)
        assert deliver(body).status_code == 400
    incoming = IncomingRequest.get(IncomingRequest.request_id == body["RequestId"])
    assert incoming.status == contract.INCOMING_ERROR
    assert "Unknown event type" in incoming.error
    return incoming


@pytest.fixture
def waiting_update(deliver):
    """An update stored as `received`, whose ticket then appeared without applying it."""
    request_id = "6b1f3a52-0000-4e0b-8a57-2f0c3d9e4a11"
    assert deliver(factories.application_decision(request_id)).json["result"]["status"] == contract.INCOMING_RECEIVED
    event, fields = load_event(parse_json_object(json.dumps(factories.application_request(request_id)).encode()))
    with write_transaction():
        task = tickets.create_ticket(event, fields)
    update = IncomingRequest.get(IncomingRequest.request_id == request_id,
                                 IncomingRequest.event_type == contract.URM_DECISION_UPDATE.name)
    assert update.status == contract.INCOMING_RECEIVED
    return update, task


def test_dry_run_says_a_ticket_would_be_created_and_changes_nothing(app, unknown_admin_delivery, admin):
    notes_before = WorkNote.select().count()

    outcome = replays.replay(unknown_admin_delivery.sys_id, admin, dry_run=True)

    assert outcome.dry_run and outcome.changed
    assert outcome.result == replays.CREATED
    assert outcome.message.startswith("would create a ticket of type Incident for Admin Access request")
    assert outcome.ticket is None
    stored = IncomingRequest.get_by_id(unknown_admin_delivery.id)
    assert (stored.status, stored.task_id, stored.error) == (contract.INCOMING_ERROR, None,
                                                             unknown_admin_delivery.error)
    assert Task.select().count() == 0 and AdminTicket.select().count() == 0
    assert WorkNote.select().count() == notes_before
    assert not AuditEntry.select().where(AuditEntry.action == replays.AUDIT_ACTION).exists()


def test_dry_run_does_not_use_up_a_ticket_number(app, unknown_admin_delivery, admin, make_ticket):
    replays.replay(unknown_admin_delivery, admin, dry_run=True)
    assert make_ticket().number == "INC0010001"


def test_replay_creates_the_ticket_once_the_event_type_is_known(app, unknown_admin_delivery, admin):
    outcome = replays.replay(unknown_admin_delivery.sys_id, admin)

    assert (outcome.result, outcome.changed, outcome.status) == (replays.CREATED, True, contract.INCOMING_PROCESSED)
    assert outcome.message == (f"created Incident INC0010001 for Admin Access request "
                               f"{unknown_admin_delivery.request_id}")
    stored = IncomingRequest.get_by_id(unknown_admin_delivery.id)
    assert stored.status == contract.INCOMING_PROCESSED
    assert stored.error is None and stored.processed_at is not None
    assert stored.task.number == outcome.ticket == "INC0010001"
    assert AdminTicket.get(AdminTicket.request_id == unknown_admin_delivery.request_id).user_name == "CORP\\akowalski"
    assert IncomingRequest.select().count() == 1  # the stored row was processed, not copied
    assert any(f"replayed by {admin.username}" in note.text for note in stored.task.work_notes)


def test_a_delivery_once_refused_for_its_content_type_becomes_its_ticket_when_replayed(app, admin):
    # As an earlier release stored a text/plain delivery: an error row, answered 415, its body kept.
    body = factories.application_request()
    stored = IncomingRequest.create(raw_body=json.dumps(body).encode(), content_type="text/plain", headers={},
                                    status=contract.INCOMING_ERROR, error="Content-Type must be application/json, "
                                    "not 'text/plain'", received_at=utcnow())

    outcome = replays.replay(stored.sys_id, admin)

    assert (outcome.result, outcome.status) == (replays.CREATED, contract.INCOMING_PROCESSED)
    made = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == body["RequestId"])
    assert made.task.number == outcome.ticket


def test_replay_is_recorded_in_the_audit_log(app, unknown_admin_delivery, admin):
    replays.replay(unknown_admin_delivery, admin, source_address="10.0.0.7")
    entry = AuditEntry.get(AuditEntry.action == replays.AUDIT_ACTION)
    assert (entry.actor, entry.object_type, entry.object_id, entry.source_address) == (
        admin.username, "incoming_request", unknown_admin_delivery.sys_id, "10.0.0.7")
    assert entry.detail["result"] == replays.CREATED and entry.detail["ticket"] == "INC0010001"


def test_dry_run_says_a_waiting_update_would_finalize_its_ticket(app, waiting_update, admin):
    update, task = waiting_update

    outcome = replays.replay(update, admin, dry_run=True)

    assert outcome.message == f"would finalize {task.number} with Approved"
    assert outcome.changed and outcome.ticket == task.number
    assert not ApplicationAccessTicket.get(ApplicationAccessTicket.task == task).decision_final
    assert IncomingRequest.get_by_id(update.id).status == contract.INCOMING_RECEIVED


def test_replay_finalizes_a_waiting_update_after_its_ticket_appeared(app, waiting_update, admin):
    update, task = waiting_update

    outcome = replays.replay(update, admin)

    assert (outcome.result, outcome.message) == (replays.FINALIZED, f"finalized {task.number} with Approved")
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.task == task)
    assert jit.decision_final and (jit.final_decision, jit.final_decision_by) == ("Approved", "jchen")
    stored = IncomingRequest.get_by_id(update.id)
    assert (stored.status, stored.task_id) == (contract.INCOMING_PROCESSED, task.id)


def test_a_replayed_update_keeps_its_ticket_s_outcome_and_a_dry_run_leaves_it(app, waiting_update, admin):
    update, task = waiting_update
    replays.replay(update, admin, dry_run=True)
    assert assert_outcome_kept(task) == (contract.OUTCOME_AWAITING, "", None)
    replays.replay(update, admin)
    assert assert_outcome_kept(task)[:2] == ("Approved", "jchen")


def test_replaying_a_processed_delivery_is_a_duplicate_and_changes_nothing(app, make_ticket, admin):
    task = make_ticket()
    incoming = IncomingRequest.get(IncomingRequest.task == task)

    for dry_run in (True, False):
        outcome = replays.replay(incoming, admin, dry_run=dry_run)
        assert outcome.result == replays.DUPLICATE and not outcome.changed
        assert outcome.message.startswith("duplicate:") and outcome.message.endswith("no change")
        assert IncomingRequest.get_by_id(incoming.id).status == contract.INCOMING_PROCESSED
    assert Task.select().count() == 1
    # Asked for and done (nothing to do), so audited: only the dry run is not.
    assert AuditEntry.select().where(AuditEntry.action == replays.AUDIT_ACTION).count() == 1


def test_replaying_a_delivery_whose_ticket_retention_deleted_changes_nothing(app, deliver, admin):
    from datetime import timedelta

    from app.jobs import retention

    created = deliver(factories.application_request("purged-1")).json["result"]
    decided = deliver(factories.application_decision("purged-1")).json["result"]
    task = Task.get(Task.number == created["ticket"])
    long_ago = utcnow() - timedelta(days=400)
    Task.update(state=task.ticket_type.closed_state, closed_at=long_ago, updated_at=long_ago).where(
        Task.id == task.id).execute()
    retention.purge()
    assert Task.select().count() == 0, "the closed ticket is past its retention (365 days by default)"

    for sys_id in (created["incoming_request"], decided["incoming_request"]):
        for dry_run in (True, False):
            outcome = replays.replay(sys_id, admin, dry_run=dry_run)
            assert (outcome.result, outcome.changed) == (replays.PURGED, False), outcome
            assert IncomingRequest.get(IncomingRequest.sys_id == sys_id).status == contract.INCOMING_PROCESSED
    assert Task.select().count() == 0, "no second ticket for a request EPM already decided"


def test_replaying_an_update_left_waiting_for_a_request_whose_ticket_retention_deleted_settles_it(
        app, deliver, admin):
    from tests.purging import purge_tickets

    deliver(factories.admin_request("purged-2"))
    deliver(factories.admin_decision("purged-2"))
    [number] = purge_tickets()
    # EPM's update sent again after the purge, as the intake kept it before it knew purged RequestIds: waiting.
    body = json.dumps(factories.admin_decision("purged-2")).encode()
    waiting = IncomingRequest.create(raw_body=body, content_type="application/json", request_id="purged-2",
                                     event_type=contract.ADMIN_TICKET_UPDATED.name)

    rehearsed = replays.replay(waiting.sys_id, admin, dry_run=True)
    assert (rehearsed.result, rehearsed.changed) == (replays.PURGED, True), rehearsed
    assert rehearsed.message.startswith("would mark it as a duplicate: RequestId purged-2 was handled here before: "
                                        f"its ticket {number} was closed and then deleted by retention")
    assert IncomingRequest.get_by_id(waiting.id).status == contract.INCOMING_RECEIVED
    outcome = replays.replay(waiting.sys_id, admin)
    assert (outcome.result, outcome.changed, outcome.ticket) == (replays.PURGED, True, None), outcome
    stored = IncomingRequest.get_by_id(waiting.id)
    assert (stored.status, stored.task_id) == (contract.INCOMING_DUPLICATE, None)
    assert stored.processed_at is not None and "deleted by retention" in stored.error
    assert Task.select().count() == 0
    assert AuditEntry.select().where(AuditEntry.action == replays.AUDIT_ACTION).count() == 1


def test_a_body_that_is_still_invalid_stays_an_error(app, deliver, admin):
    assert deliver({"EventType": "URM_Native_Ticket_Created"}).status_code == 400
    incoming = IncomingRequest.get()

    outcome = replays.replay(incoming, admin)

    assert outcome.result == replays.INVALID and not outcome.changed
    assert "RequestId" in outcome.message
    assert IncomingRequest.get_by_id(incoming.id).status == contract.INCOMING_ERROR


def test_cli_replay_dry_run_then_apply(app, runner, unknown_admin_delivery):
    dry = runner.invoke(args=["replay", unknown_admin_delivery.sys_id, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Dry run: would create a ticket of type Incident" in dry.output
    assert Task.select().count() == 0

    applied = runner.invoke(args=["replay", unknown_admin_delivery.sys_id])
    assert applied.exit_code == 0, applied.output
    assert "created Incident INC0010001" in applied.output and "Status: processed" in applied.output
    assert AuditEntry.get(AuditEntry.action == replays.AUDIT_ACTION).actor.startswith("cli:")


def test_a_cli_replay_that_fails_again_exits_non_zero(app, runner, deliver, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("ticket numbering is broken")

    monkeypatch.setattr(tickets, "create_ticket", broken)
    with pytest.raises(RuntimeError):  # the test client re-raises what the webhook answered 500 for
        deliver(factories.admin_request())
    incoming = IncomingRequest.get()
    assert incoming.status == contract.INCOMING_ERROR

    result = runner.invoke(args=["replay", incoming.sys_id])

    assert result.exit_code == 1, result.output
    assert "processing failed: RuntimeError: ticket numbering is broken; no change" in result.output
    assert "Status: error" in result.output
    assert Task.select().count() == 0


def test_a_replay_page_replay_that_fails_again_says_so_as_an_error(app, as_admin, deliver, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("ticket numbering is broken")

    monkeypatch.setattr(tickets, "create_ticket", broken)
    with pytest.raises(RuntimeError):
        deliver(factories.admin_request())
    incoming = IncomingRequest.get()

    applied = as_admin.post(f"/admin/incoming/{incoming.sys_id}/replay", {"mode": "apply", **CONFIRMED})

    page = as_admin.get(applied.headers["Location"]).get_data(as_text=True)
    flash = re.search(r'<p class="flash (\w+)" role="(\w+)">Replay: processing failed: RuntimeError', page)
    assert flash, page
    assert flash.groups() == ("error", "alert"), "a failed replay is an error, not a warning that nothing changed"
    assert IncomingRequest.get_by_id(incoming.id).status == contract.INCOMING_ERROR


def test_the_replay_api_says_whether_the_replay_failed(app, client, admin_auth, deliver, unknown_admin_delivery):
    invalid = deliver({"EventType": "URM_Native_Ticket_Created"})
    assert invalid.status_code == 400
    still_invalid = IncomingRequest.get(IncomingRequest.request_id.is_null())

    for incoming, failed in ((still_invalid, True), (unknown_admin_delivery, False)):
        answer = client.post(f"/api/x_bets_pmc_jit/ops/incoming_requests/{incoming.sys_id}/replay", json={},
                             headers=admin_auth)
        assert answer.status_code == 200
        assert answer.json["result"]["failed"] is failed, answer.json


def test_a_cli_replay_of_a_delivery_that_is_still_invalid_exits_non_zero(app, runner, deliver):
    assert deliver({"EventType": "URM_Native_Ticket_Created"}).status_code == 400
    incoming = IncomingRequest.get()

    for args in (["replay", incoming.sys_id, "--dry-run"], ["replay", incoming.sys_id]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1, result.output
        assert "still not a valid delivery" in result.output


def test_a_cli_replay_that_changes_nothing_but_did_not_fail_exits_zero(app, runner, make_ticket):
    incoming = IncomingRequest.get(IncomingRequest.task == make_ticket().id)

    result = runner.invoke(args=["replay", incoming.sys_id])

    assert result.exit_code == 0, result.output
    assert "duplicate" in result.output and "no change" in result.output


def test_cli_replay_of_an_unknown_delivery_fails(app, runner):
    result = runner.invoke(args=["replay", "0" * 32])
    assert result.exit_code != 0
    assert "No incoming request" in result.output


def test_replay_page_previews_then_applies(app, as_admin, unknown_admin_delivery):
    path = f"/admin/incoming/{unknown_admin_delivery.sys_id}/replay"

    preview = as_admin.post(path, {"mode": "dry-run"})
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "Dry run:</strong> would create a ticket of type Incident" in page
    assert re.search(r'name="mode" value="apply"', page)
    assert Task.select().count() == 0

    applied = as_admin.post(path, {"mode": "apply", **CONFIRMED})
    assert applied.status_code == 302
    assert IncomingRequest.get_by_id(unknown_admin_delivery.id).status == contract.INCOMING_PROCESSED
    follow = as_admin.get(applied.headers["Location"]).get_data(as_text=True)
    assert "Replay: created Incident INC0010001" in follow


def test_replay_page_offers_no_replay_when_nothing_would_change(app, as_admin, make_ticket):
    incoming = IncomingRequest.get(IncomingRequest.task == make_ticket())
    page = as_admin.post(f"/admin/incoming/{incoming.sys_id}/replay", {"mode": "dry-run"}).get_data(as_text=True)
    assert "duplicate: a ticket for RequestId" in page
    assert 'value="apply"' not in page


def test_replay_api_dry_run_and_apply(app, client, admin_auth, unknown_admin_delivery):
    path = f"/api/x_bets_pmc_jit/ops/incoming_requests/{unknown_admin_delivery.sys_id}/replay"

    dry = client.post(path, json={"dry_run": True}, headers=admin_auth)
    assert dry.status_code == 200
    assert dry.json["result"]["dry_run"] is True and dry.json["result"]["result"] == "created"
    assert Task.select().count() == 0

    applied = client.post(path, json={}, headers=admin_auth)
    assert applied.json["result"]["ticket"] == "INC0010001"
    assert applied.json["result"]["status"] == contract.INCOMING_PROCESSED


def test_replay_api_rejects_a_dry_run_that_is_not_a_boolean(app, client, admin_auth, unknown_admin_delivery):
    path = f"/api/x_bets_pmc_jit/ops/incoming_requests/{unknown_admin_delivery.sys_id}/replay"
    answer = client.post(path, json={"dry_run": "yes"}, headers=admin_auth)
    assert answer.status_code == 400
    assert Task.select().count() == 0


def test_a_failed_delivery_that_epm_sent_again_is_marked_a_duplicate(app, unknown_admin_delivery, deliver, admin):
    resent = deliver(json.loads(bytes(unknown_admin_delivery.raw_body))).json["result"]
    assert resent["status"] == contract.INCOMING_PROCESSED

    preview = replays.replay(unknown_admin_delivery, admin, dry_run=True)
    assert preview.message.startswith("would mark it as a duplicate: a ticket for RequestId")
    assert IncomingRequest.get_by_id(unknown_admin_delivery.id).status == contract.INCOMING_ERROR

    outcome = replays.replay(unknown_admin_delivery, admin)
    stored = IncomingRequest.get_by_id(unknown_admin_delivery.id)
    assert (outcome.changed, stored.status, stored.task.number) == (True, contract.INCOMING_DUPLICATE, resent["ticket"])
    assert Task.select().count() == 1


# --- Updates after EPM's final decision (contract/epm.md 5.3) ------------------------------------

def stored_as_error(deliver, monkeypatch, body):
    """`body` delivered while its event type was unknown to the broker: an error row to replay."""
    with monkeypatch.context() as unknown:
        unknown.delitem(contract.EVENT_TYPES, body["EventType"])
        assert deliver(body).status_code == 400
    return IncomingRequest.select().order_by(IncomingRequest.id.desc()).get()


def delivered(deliver, body):
    return IncomingRequest.get(IncomingRequest.sys_id == deliver(body).json["result"]["incoming_request"])


def admin_notes(request_id):
    jit = AdminTicket.get(AdminTicket.request_id == request_id)
    return [note.text for note in WorkNote.select().where(WorkNote.task == jit.task_id).order_by(WorkNote.id)]


def conflict_warnings(caplog):
    return [record for record in caplog.records
            if record.name == tickets.log.name and record.levelno == logging.WARNING]


@pytest.fixture
def revoked(deliver):
    """An Admin Access ticket approved, then revoked in EPM, then sent the approval again; the approval's rows."""
    deliver(factories.admin_request(request_id="replay-rev"))
    approval = delivered(deliver, factories.admin_decision("replay-rev"))
    deliver(factories.admin_revocation("replay-rev"))
    resent = delivered(deliver, factories.admin_decision("replay-rev", Timestamp="2026-11-20T15:30:00Z"))
    return approval, resent


def test_replaying_an_older_update_again_changes_nothing_and_adds_no_note(app, revoked, admin):
    notes_before = admin_notes("replay-rev")

    for row in revoked:
        for dry_run in (True, False, False):
            outcome = replays.replay(row, admin, dry_run=dry_run)
            assert (outcome.result, outcome.changed, outcome.status) == (
                replays.OLDER, False, contract.INCOMING_PROCESSED)
            assert outcome.message == "changed nothing: older than the recorded state; INC0010001 keeps Revoked"

    assert admin_notes("replay-rev") == notes_before
    jit = AdminTicket.get(AdminTicket.request_id == "replay-rev")
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", "Revoked")


def test_an_older_update_stored_as_an_error_is_marked_processed_once(app, deliver, monkeypatch, admin):
    deliver(factories.admin_request(request_id="replay-old"))
    deliver(factories.admin_decision("replay-old"))
    deliver(factories.admin_revocation("replay-old"))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_decision("replay-old"))

    preview = replays.replay(failed, admin, dry_run=True)
    assert (preview.result, preview.changed) == (replays.OLDER, True)
    assert preview.message == ("would mark it processed, changing nothing: older than the recorded state; "
                               "INC0010001 keeps Revoked")

    outcome = replays.replay(failed, admin)
    assert (outcome.result, outcome.status) == (replays.OLDER, contract.INCOMING_PROCESSED)
    assert outcome.message.startswith("marked it processed, changing nothing: older than the recorded state")
    notes = admin_notes("replay-old")
    assert sum("re-sent an older update" in text for text in notes) == 1
    assert sum("replayed by" in text for text in notes) == 1

    again = replays.replay(failed, admin)
    assert (again.result, again.changed) == (replays.OLDER, False)
    assert admin_notes("replay-old") == notes


def test_a_revocation_stored_as_an_error_is_recorded_as_the_newer_state(app, deliver, monkeypatch, admin):
    deliver(factories.admin_request(request_id="replay-new"))
    deliver(factories.admin_decision("replay-new"))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_revocation("replay-new"))

    preview = replays.replay(failed, admin, dry_run=True)
    assert preview.message == ("would record EPM's newer state on INC0010001: Revoked (Denied by secops-lead at "
                               "2026-11-20 15:20:40 UTC)")
    assert AdminTicket.get(AdminTicket.request_id == "replay-new").epm_outcome is None

    outcome = replays.replay(failed, admin)
    assert (outcome.result, outcome.changed, outcome.status) == (replays.UPDATED, True, contract.INCOMING_PROCESSED)
    assert outcome.message.startswith("recorded EPM's newer state on INC0010001: Revoked")
    assert AdminTicket.get(AdminTicket.request_id == "replay-new").epm_outcome == "Revoked"

    again = replays.replay(failed, admin)
    assert (again.result, again.changed) == (replays.DUPLICATE, False)


def test_an_approval_replayed_after_its_revocation_arrived_reads_revoked_as_its_late_webhook_makes_it(
        app, deliver, monkeypatch, admin):
    # The approval failed (stored as an error) and its revocation came: replayed, the approval tells the ticket
    # what its late webhook tells it (tickets.older_update_outcome), and the replay says so.
    for request_id in ("replay-late", "webhook-late"):
        deliver(factories.admin_request(request_id=request_id))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_decision("replay-late"))
    for request_id in ("replay-late", "webhook-late"):
        deliver(factories.admin_revocation(request_id))
    deliver(factories.admin_decision("webhook-late"))

    preview = replays.replay(failed, admin, dry_run=True)
    assert (preview.result, preview.changed) == (replays.OLDER, True)
    assert preview.message == ("would record EPM's older update on INC0010001, after the newer one: it would read "
                               "Revoked, as in order (Approved by jchen at 2026-11-20 15:12:02 UTC)")
    assert AdminTicket.get(AdminTicket.request_id == "replay-late").epm_outcome is None

    outcome = replays.replay(failed, admin)
    assert (outcome.result, outcome.changed, outcome.status) == (replays.OLDER, True, contract.INCOMING_PROCESSED)
    assert outcome.message == ("recorded EPM's older update on INC0010001, after the newer one: it now reads "
                               "Revoked, as in order (Approved by jchen at 2026-11-20 15:12:02 UTC)")
    replayed, delivered = (AdminTicket.get(AdminTicket.request_id == request_id)
                           for request_id in ("replay-late", "webhook-late"))
    for jit in (replayed, delivered):
        assert (jit.final_decision, jit.final_decision_by, jit.epm_outcome) == (
            "Denied", "secops-lead", contract.EPM_OUTCOME_REVOKED)
        assert assert_outcome_kept(jit.task_id)[0] == contract.EPM_OUTCOME_REVOKED
    told = ("EPM sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) after the newer one: the ticket "
            "now reads Revoked, as it would have in order. Nothing is sent to EPM for it.")
    assert admin_notes("replay-late")[-2:] == [
        told, f"Stored delivery {failed.sys_id} (JIT_ADMIN_TICKET_UPDATED) replayed by {admin.username}: "
              f"{outcome.message}."]
    assert admin_notes("webhook-late")[-1] == told

    again = replays.replay(failed, admin)
    assert (again.result, again.changed) == (replays.OLDER, False)
    assert again.message == "changed nothing: older than the recorded state; INC0010001 keeps Revoked"


def test_a_replayed_revocation_is_kept_as_its_ticket_s_outcome(app, deliver, monkeypatch, admin):
    deliver(factories.admin_request(request_id="replay-kept"))
    deliver(factories.admin_decision("replay-kept"))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_revocation("replay-kept"))
    replays.replay(failed, admin)
    task_id = AdminTicket.get(AdminTicket.request_id == "replay-kept").task_id
    assert assert_outcome_kept(task_id)[:2] == (contract.EPM_OUTCOME_REVOKED, "secops-lead")


def test_a_conflict_stored_as_an_error_is_kept_as_a_conflict_and_warned_once(app, deliver, monkeypatch, admin,
                                                                             caplog):
    deliver(factories.admin_request(request_id="replay-conflict"))
    deliver(factories.admin_decision("replay-conflict", Decision="Denied", DecisionPerformedByUser="secops-lead"))
    failed = stored_as_error(deliver, monkeypatch,
                             factories.admin_decision("replay-conflict", DecisionTime="2026-11-20T15:30:00Z"))

    with caplog.at_level(logging.WARNING):
        preview = replays.replay(failed, admin, dry_run=True)
        assert (preview.result, preview.changed) == (replays.CONFLICT, True)
        assert preview.message == ("would keep it as a conflict on INC0010001: EPM's update says Approved by jchen "
                                   "at 2026-11-20 15:30:00 UTC; the ticket keeps Denied")
        assert conflict_warnings(caplog) == []
        assert AdminTicket.get(AdminTicket.request_id == "replay-conflict").conflict_decision is None

        outcome = replays.replay(failed, admin)
        assert (outcome.result, outcome.changed) == (replays.CONFLICT, True)
        assert outcome.message.startswith("kept it as a conflict on INC0010001: EPM's update says Approved by jchen")
        assert len(conflict_warnings(caplog)) == 1
        notes = admin_notes("replay-conflict")

        again = replays.replay(failed, admin)
        assert (again.result, again.changed, again.status) == (replays.CONFLICT, False, contract.INCOMING_PROCESSED)
        assert again.message.startswith("changed nothing: already kept as a conflict on INC0010001 (EPM's update "
                                        "says Approved by jchen")
        assert len(conflict_warnings(caplog)) == 1
    jit = AdminTicket.get(AdminTicket.request_id == "replay-conflict")
    assert (jit.final_decision, jit.conflict_decision) == ("Denied", "Approved")
    assert admin_notes("replay-conflict") == notes


def test_replaying_an_earlier_conflict_keeps_the_latest_one(app, deliver, admin, caplog):
    deliver(factories.admin_request(request_id="replay-conflicts"))
    deliver(factories.admin_decision("replay-conflicts", Decision="Denied", DecisionPerformedByUser="secops-lead"))
    first = delivered(deliver, factories.admin_decision("replay-conflicts", DecisionTime="2026-11-20T15:30:00Z"))
    deliver(factories.admin_decision("replay-conflicts", DecisionTime="2026-11-20T15:40:00Z"))
    notes = admin_notes("replay-conflicts")
    caplog.clear()

    with caplog.at_level(logging.WARNING):
        outcome = replays.replay(first, admin)

    assert (outcome.result, outcome.changed) == (replays.CONFLICT, False)
    assert outcome.message.startswith("changed nothing: already kept as a conflict on INC0010001")
    assert conflict_warnings(caplog) == []
    jit = AdminTicket.get(AdminTicket.request_id == "replay-conflicts")
    assert jit.conflict_decision_time.isoformat() == "2026-11-20T15:40:00"
    assert admin_notes("replay-conflicts") == notes


def test_the_replay_api_answers_an_older_update_as_older(app, client, admin_auth, revoked):
    answer = client.post(f"/api/x_bets_pmc_jit/ops/incoming_requests/{revoked[1].sys_id}/replay",
                         json={"dry_run": True}, headers=admin_auth)
    assert answer.status_code == 200
    assert (answer.json["result"]["result"], answer.json["result"]["changed"]) == ("older", False)


def test_a_replayed_update_whose_decision_is_unreadable_names_its_decision_text(app, deliver, monkeypatch, admin):
    deliver(factories.admin_request(request_id="replay-typo"))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_decision("replay-typo", Decision="Aproved"))
    what = 'an update whose Decision "Aproved" is neither Approved nor Denied'

    preview = replays.replay(failed, admin, dry_run=True)
    assert preview.message == f"would note {what} on INC0010001; it awaits EPM's decision"

    outcome = replays.replay(failed, admin)
    assert outcome.result == replays.UNDECIDED
    assert outcome.message == f"noted {what} on INC0010001; it awaits EPM's decision"
    again = replays.replay(failed, admin)
    assert (again.result, again.changed) == (replays.UNDECIDED, False)
    assert again.message == f"changed nothing: {what}, noted already; INC0010001 awaits EPM's decision"


def test_a_replayed_later_state_whose_decision_is_unreadable_names_its_decision_text(
        app, deliver, monkeypatch, admin):
    deliver(factories.admin_request(request_id="replay-typo-later"))
    deliver(factories.admin_decision("replay-typo-later"))
    failed = stored_as_error(deliver, monkeypatch, factories.admin_revocation("replay-typo-later", Decision="Aproved"))
    said = ('Ended early (no decision (Decision "Aproved", neither Approved nor Denied) by secops-lead at '
            '2026-11-20 15:20:40 UTC)')

    preview = replays.replay(failed, admin, dry_run=True)
    assert preview.message == f"would record EPM's newer state on INC0010001: {said}"
    assert replays.replay(failed, admin).message == f"recorded EPM's newer state on INC0010001: {said}"
