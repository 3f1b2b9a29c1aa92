"""Reconciliation against EPM's lists in the shapes of contract/epm.md §5 (served with `responses`):
what webhooks missed is repaired, once, and a record the broker cannot use is reported, not fatal."""
import logging
from datetime import datetime

from app import contract
from app.audit.models import AuditEntry
from app.configuration import update_configuration
from app.decisions import service as decisions
from app.intake import service as intake
from app.jobs.models import JobRun
from app.jobs.reconcile import reconcile
from app.jobs.registry import JOBS, run_job
from app.models import AdminTicket, ApplicationAccessTicket, IncomingRequest, Task, WorkNote
from tests import factories
from tests.jobs.conftest import EPM, admin_record, application_record
from tests.outcomes import assert_outcome_kept
from tests.purging import purge_tickets

APPLICATION, ADMIN = contract.KIND_APPLICATION, contract.KIND_ADMIN


def notes(task):
    return [note.text for note in WorkNote.select().where(WorkNote.task == task).order_by(WorkNote.id)]


def jit_of(kind, record):
    model = ApplicationAccessTicket if kind == APPLICATION else AdminTicket
    return model.get(model.request_id == record["requestInfo"]["requestId"])


# --- Tickets for requests the broker never saw -----------------------------------------------------


def test_requests_epm_lists_but_the_broker_never_saw_become_tickets_once(epm_api):
    application = epm_api.add(APPLICATION, application_record())
    application["requestInfo"]["riskScore"] = "7"  # a key no source shows: kept
    admin = epm_api.add(ADMIN, admin_record())
    update_configuration({"tenant_id": "0d3c2b1a-tenant"})

    report = reconcile()

    assert [item["request_id"] for item in report.created] == [application["id"], admin["requestInfo"]["requestId"]]
    app_jit = jit_of(APPLICATION, application)
    assert (app_jit.task.requester, app_jit.task.host, app_jit.task.subject, app_jit.reason) == (
        "ACME\\jdoe", "WS-0042", "Contoso Printer Setup", "Install printer driver")
    assert app_jit.requested_at == datetime(2026, 11, 22, 5, 0, 0, 123456)
    assert app_jit.request_info["riskScore"] == "7" and app_jit.request_info["publisher"] == "Contoso Ltd"
    assert app_jit.epm_ticket_number is None, "serviceTicket.ticketId is the broker's own number echoed back"
    assert app_jit.tenant_id == "0d3c2b1a-tenant", "records name no tenant: the configured one listed them"
    assert app_jit.epm_record == application and app_jit.epm_checked_at is not None
    assert any("reconciled from EPM" in text for text in notes(app_jit.task))
    admin_jit = jit_of(ADMIN, admin)
    assert (admin_jit.task.requester, admin_jit.epm_ticket_number, admin_jit.duration_requested) == (
        "ACME\\jdoe", "1042", "1800")
    assert (admin_jit.user_id, admin_jit.computer_id) == (admin["requestInfo"]["userId"],
                                                          admin["requestInfo"]["computerId"])
    assert not admin_jit.decision_final and not app_jit.decision_final

    again = reconcile()
    assert again.changes == 0 and again.seen == {APPLICATION: 1, ADMIN: 1}
    assert Task.select().count() == 2 and WorkNote.select().count() == len(notes(app_jit.task)) * 2


def test_requests_decided_in_epm_become_tickets_with_their_decisions(epm_api):
    approved = epm_api.add(APPLICATION, application_record(status="Approved", decisionPerformedByUser="alice",
                                                           decisionTime="2026-11-22 05:03:10", duration="Once"))
    denied = epm_api.add(APPLICATION, application_record(status="2001"))
    admin = epm_api.add(ADMIN, admin_record(status="2000", duration="1800", startTime="2026-11-22T05:05:00Z",
                                            endTime="2026-11-22T05:35:00Z"))

    report = reconcile()

    assert [item["decision"] for item in report.created] == ["Approved", "Denied", "Approved"]
    first = jit_of(APPLICATION, approved)
    assert (first.decision_final, first.final_decision, first.final_decision_by, first.final_duration) == (
        True, "Approved", "alice", "Once")
    assert first.final_decision_time == datetime(2026, 11, 22, 5, 3, 10)
    second = jit_of(APPLICATION, denied)
    assert (second.decision_final, second.final_decision, second.final_decision_by) == (True, "Denied", None)
    elevated = jit_of(ADMIN, admin)
    assert (elevated.final_decision, elevated.final_duration) == ("Approved", "1800")
    assert (elevated.final_start_time, elevated.final_end_time) == (datetime(2026, 11, 22, 5, 5),
                                                                    datetime(2026, 11, 22, 5, 35))
    assert any("EPM finalized the decision: Approved" in text for text in notes(elevated.task))
    assert reconcile().changes == 0


def test_statuses_are_read_through_the_configured_mapping(epm_api):
    update_configuration({"epm_approved_statuses": "Granted", "epm_denied_statuses": "Refused"})
    granted = epm_api.add(ADMIN, admin_record(status="granted"))
    default_word = epm_api.add(ADMIN, admin_record(status="Approved"))

    reconcile()

    assert jit_of(ADMIN, granted).final_decision == "Approved"
    assert not jit_of(ADMIN, default_word).decision_final, "Approved is no longer a status meaning approved"


def test_a_late_webhook_after_reconciliation_creates_nothing_twice(epm_api, deliver):
    record = epm_api.add(APPLICATION, application_record(status="Denied"))
    reconcile()

    answer = deliver(factories.application_request(record["id"]))

    assert answer.status_code == 200 and answer.json["result"]["status"] == contract.INCOMING_DUPLICATE
    assert Task.select().count() == 1


def test_a_dry_run_reports_without_creating(epm_api):
    record = epm_api.add(APPLICATION, application_record())
    report = reconcile(dry_run=True)
    assert report.created == [{"kind": APPLICATION, "request_id": record["id"], "ticket": None, "decision": None}]
    assert "Would create a ticket for application request" in "\n".join(report.lines())
    assert Task.select().count() == 0


def test_a_ticket_reconciled_is_audited(epm_api):
    epm_api.add(ADMIN, admin_record())
    report = reconcile(actor="cli:ops")
    entry = AuditEntry.get(AuditEntry.action == "reconcile_ticket_created")
    assert entry.actor == "cli:ops" and entry.object_id == report.created[0]["ticket"]


def test_a_request_epm_still_lists_after_retention_deleted_its_ticket_gets_no_new_one(epm_api, deliver):
    epm_api.add(APPLICATION, application_record(status="Approved", duration="3600"))
    admin = epm_api.add(ADMIN, admin_record(status="Denied"))
    deliver(factories.admin_request(admin["requestInfo"]["requestId"]))  # this one's webhook came
    assert len(reconcile().created) == 1
    purge_tickets()

    for dry_run in (True, False):
        report = reconcile(dry_run=dry_run)
        assert report.seen == {APPLICATION: 1, ADMIN: 1} and report.changes == 0, report.lines()
    assert Task.select().count() == 0, "approvers would decide them again, and EPM would get a second decision"
    assert AuditEntry.select().where(AuditEntry.action == "reconcile_ticket_created").count() == 1


# --- Decisions on tickets the broker has ----------------------------------------------------------


def test_a_decision_taken_in_epm_whose_update_was_lost_is_finalized(epm_api, make_ticket):
    event = factories.application_request()
    task = make_ticket(event)  # the created webhook did arrive
    record = epm_api.add(APPLICATION, application_record(event["RequestId"], status="Denied",
                                                         decisionPerformedByUser="epm-admin"))

    report = reconcile()

    jit = task.jit_request
    assert jit.decision_final and jit.final_decision == "Denied" and jit.final_decision_by == "epm-admin"
    assert jit.epm_record == record
    assert jit.request_info["user"] == event["requestInfo"]["user"], "the ticket keeps what its webhook said"
    assert report.finalized[0]["why"] == "decided in EPM; its update never arrived"
    assert any("reconciled from EPM" in text for text in notes(task))
    assert reconcile().changes == 0


def test_a_decision_sent_from_here_whose_update_never_came_is_finalized(epm_api, make_ticket, approver):
    event = factories.admin_request()
    task = make_ticket(event)
    epm_api.mock.post(f"{EPM}{contract.EPM_ADMIN_DECISION_PATH}", status=200)
    sent = decisions.decide(task, approver, "Approved", "printer driver", "hours", 2, ticket_url="http://b/t")
    assert sent.status == contract.DELIVERY_DELIVERED  # EPM acknowledged; no update event came
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Approved", duration="7200"))

    report = reconcile()

    jit = task.jit_request
    assert jit.decision_final and jit.final_decision == "Approved" and jit.final_duration == "7200"
    assert report.finalized[0]["why"] == "the update for the decision sent from here never arrived"


def test_a_decision_sent_from_here_that_epm_still_shows_pending_is_reported(epm_api, make_ticket, approver):
    event = factories.admin_request()
    task = make_ticket(event)
    epm_api.mock.post(f"{EPM}{contract.EPM_ADMIN_DECISION_PATH}", status=200)
    decisions.decide(task, approver, "Denied", "not now", ticket_url="http://b/t")
    epm_api.add(ADMIN, admin_record(event["RequestId"]))

    report = reconcile()

    assert report.awaiting == [{"kind": ADMIN, "request_id": event["RequestId"], "ticket": task.number}]
    assert not task.jit_request.decision_final


def test_a_request_decided_before_its_ticket_existed_is_created_finalized_and_closed(epm_api):
    update_configuration({"auto_close": "true"})
    record = epm_api.add(APPLICATION, application_record(status="Approved", duration="3600"))
    reconcile()
    task = Task.get(Task.request_id == record["id"])
    assert task.jit_request.final_decision == "Approved" and task.state == task.ticket_type.closed_state


def test_a_pending_request_is_left_pending(epm_api, make_ticket):
    event = factories.application_request()
    make_ticket(event)
    epm_api.add(APPLICATION, application_record(event["RequestId"], status="Pending"))
    report = reconcile()
    assert report.changes == 0 and not Task.get().jit_request.decision_final
    assert Task.get().jit_request.epm_record is None, "nothing changed, nothing stored"


def test_an_update_that_arrived_without_its_created_event_is_applied_to_the_reconciled_ticket(epm_api, deliver):
    record = epm_api.add(APPLICATION, application_record())
    deliver(factories.application_decision(record["id"]))  # the created webhook was lost
    waiting = IncomingRequest.get()
    assert waiting.status == contract.INCOMING_RECEIVED

    reconcile()

    task = Task.get(Task.request_id == record["id"])
    assert task.jit_request.decision_final
    assert IncomingRequest.get_by_id(waiting.id).status == contract.INCOMING_PROCESSED
    assert IncomingRequest.select().count() == 1, "reconciliation stores no delivery of its own"


def test_each_ticket_reconciliation_decides_keeps_its_outcome(epm_api, make_ticket, deliver):
    created = epm_api.add(APPLICATION, application_record(status="Approved", decisionPerformedByUser="alice",
                                                          decisionTime="2026-11-22 05:03:10"))
    event = factories.application_request()
    finalized = make_ticket(event)
    epm_api.add(APPLICATION, application_record(event["RequestId"], status="Denied",
                                                decisionPerformedByUser="epm-admin"))
    admin_event = factories.admin_request()
    revoked = make_ticket(admin_event)
    deliver(factories.admin_decision(admin_event["RequestId"]))
    epm_api.add(ADMIN, admin_record(admin_event["RequestId"], status="Denied", duration="1800",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:20:41Z"))

    reconcile()

    assert assert_outcome_kept(jit_of(APPLICATION, created).task_id) == (
        "Approved", "alice", datetime(2026, 11, 22, 5, 3, 10))
    assert assert_outcome_kept(finalized)[:2] == ("Denied", "epm-admin")
    assert assert_outcome_kept(revoked)[0] == contract.EPM_OUTCOME_REVOKED


# --- Paging -------------------------------------------------------------------------------------


def test_every_page_of_epm_s_list_is_read_with_epm_s_paging_parameters(epm_api):
    epm_api.add(ADMIN, *(admin_record() for _ in range(201)))
    report = reconcile()
    assert report.seen[ADMIN] == 201 and len(report.created) == 201
    assert AdminTicket.select().count() == 201
    assert [ask for ask in epm_api.asked if ask[0] == ADMIN] == [(ADMIN, 1, 200), (ADMIN, 2, 200)]


def test_paging_stops_on_an_empty_page(epm_api):
    epm_api.pages[ADMIN] = [{"data": [admin_record()]}, {"data": [admin_record()]}, {"data": []},
                            {"data": [admin_record()]}]
    report = reconcile()
    assert report.seen[ADMIN] == 2 and [n for kind, n, _ in epm_api.asked if kind == ADMIN] == [1, 2, 3]


def test_paging_stops_at_the_page_count(epm_api):
    epm_api.pages[ADMIN] = [{"data": [admin_record()], "pageCount": "2", "totalRecordCount": 999},
                            {"data": [admin_record()], "pageCount": 2, "totalRecordCount": 999},
                            {"data": [admin_record()]}]
    report = reconcile()
    assert report.seen[ADMIN] == 2 and [n for kind, n, _ in epm_api.asked if kind == ADMIN] == [1, 2]


def test_paging_stops_once_the_total_record_count_is_read(epm_api):
    epm_api.pages[APPLICATION] = [{"data": [application_record(), application_record()], "TotalRecordCount": 3},
                                  {"data": [application_record()], "TotalRecordCount": 3},
                                  {"data": [application_record()], "TotalRecordCount": 3}]
    report = reconcile()
    assert report.seen[APPLICATION] == 3 and [n for kind, n, _ in epm_api.asked if kind == APPLICATION] == [1, 2]


def test_a_page_without_a_data_list_is_a_problem(epm_api):
    epm_api.pages[ADMIN] = [{"items": []}]
    report = reconcile()
    assert report.problems == ["EPM's admin request list, page 1, has no data list"]


# --- Records the broker cannot use ------------------------------------------------------------------


def test_a_record_without_a_usable_request_id_is_a_problem_not_a_crash(epm_api):
    good = epm_api.add(ADMIN, admin_record())
    no_id = admin_record()
    del no_id["requestInfo"]["requestId"]
    flat = {"id": "flat-1", "status": "Approved"}  # admin ids come from requestInfo.requestId only
    bad_id = admin_record("bad\x00id")
    epm_api.add(ADMIN, no_id, flat, bad_id, "not a record")

    report = reconcile()

    assert [item["request_id"] for item in report.created] == [good["requestInfo"]["requestId"]]
    assert len(report.problems) == 4
    assert "no request id" in report.problems[0] and "no request id" in report.problems[1]
    assert "unusable record" in report.problems[2] and "not an object" in report.problems[3]
    assert AdminTicket.select().count() == 1


def test_a_record_whose_text_holds_a_nul_is_reconciled_with_its_text_made_storable(epm_api):
    bad = application_record()
    bad["requestInfo"]["reason"] = "printer\u0000driver"  # JSON's \\u0000: no database text stores it
    epm_api.add(APPLICATION, bad, application_record())
    epm_api.add(ADMIN, admin_record(), admin_record())

    outcome = run_job(JOBS["reconcile"])

    assert outcome.error is None and outcome.result.startswith("4 tickets created")
    assert ApplicationAccessTicket.select().count() == 2 and AdminTicket.select().count() == 2
    jit = jit_of(APPLICATION, bad)
    assert jit.reason == "printer\ufffddriver"  # as a webhook's text is stored
    assert jit.epm_record["requestInfo"]["reason"] == "printer\ufffddriver"


def test_a_record_that_fails_to_be_reconciled_is_a_problem_and_the_others_are_reconciled(epm_api, monkeypatch):
    first, failing, last = epm_api.add(ADMIN, admin_record(), admin_record(), admin_record())
    failing_id = failing["requestInfo"]["requestId"]
    real_apply = intake.apply_event

    def apply_then_fail(delivery, event, fields):
        applied = real_apply(delivery, event, fields)
        if fields["request_id"] == failing_id:
            raise RuntimeError("the ticket service broke")
        return applied

    monkeypatch.setattr(intake, "apply_event", apply_then_fail)

    report = reconcile()

    assert [item["request_id"] for item in report.created] == [
        first["requestInfo"]["requestId"], last["requestInfo"]["requestId"]]
    assert report.problems == [f"admin request {failing_id}: could not be reconciled "
                               "(RuntimeError: the ticket service broke)"]
    # Its ticket was undone with the rest of its repair: the next run creates it whole.
    assert AdminTicket.get_or_none(AdminTicket.request_id == failing_id) is None
    assert Task.select().count() == 2
    assert AuditEntry.select().where(AuditEntry.action == "reconcile_ticket_created").count() == 2
    monkeypatch.setattr(intake, "apply_event", real_apply)
    assert [item["request_id"] for item in reconcile().created] == [failing_id]


def nested(depth):
    """An object `depth` levels deep: more than the broker's reading can follow."""
    document = {}
    for _ in range(depth):
        document = {"inner": document}
    return document


def test_a_record_the_broker_cannot_read_is_a_logged_problem_and_the_others_are_reconciled(epm_api, caplog):
    first, over_long, deep, last = (admin_record() for _ in range(4))
    over_long["accessDecision"]["duration"] = "1" * 5000 + ".0"  # more digits than Python reads: kept as text
    deep["requestInfo"]["details"] = nested(600)
    epm_api.add(ADMIN, first, over_long, deep, last)

    report = reconcile()

    assert [item["request_id"] for item in report.created] == [
        first["requestInfo"]["requestId"], over_long["requestInfo"]["requestId"], last["requestInfo"]["requestId"]]
    deep_id = deep["requestInfo"]["requestId"]
    assert [problem.split(" (")[0] for problem in report.problems] == [f"admin request {deep_id}: unreadable record"]
    assert "RecursionError" in report.problems[0]
    assert all(len(problem) < 300 for problem in report.problems)
    warnings = [record.getMessage() for record in caplog.records
                if record.name == "app.jobs.reconcile" and record.levelno == logging.WARNING]
    assert warnings == [f"reconcile: {problem}" for problem in report.problems]
    assert AdminTicket.select().count() == 3


def test_a_decision_whose_count_is_too_long_to_read_is_an_unusable_record(epm_api):
    record = admin_record(status="Approved", duration="1" * 5000 + ".0")
    epm_api.add(ADMIN, record)

    report = reconcile()

    assert report.created == [] and len(report.problems) == 1
    assert report.problems[0].startswith(f"admin request {record['requestInfo']['requestId']}: unusable record")
    assert "Duration is a number too long to be a count" in report.problems[0]


def test_a_page_total_too_long_to_read_does_not_stop_the_run(epm_api):
    too_long = "9" * 5000
    epm_api.pages[ADMIN] = [{"data": [admin_record()], "pageCount": too_long, "totalRecordCount": too_long + ".0"},
                            {"data": []}]
    epm_api.add(APPLICATION, application_record())

    report = reconcile()

    assert report.seen == {APPLICATION: 1, ADMIN: 1} and len(report.created) == 2
    assert [n for kind, n, _ in epm_api.asked if kind == ADMIN] == [1, 2]


def test_each_problem_is_logged_and_kept_in_the_job_s_last_result(epm_api, runner, caplog):
    no_id = admin_record()
    del no_id["requestInfo"]["requestId"]
    epm_api.add(ADMIN, admin_record(), no_id, admin_record("bad\x00id"))

    outcome = run_job(JOBS["reconcile"])

    assert outcome.error is None
    warnings = [record.getMessage() for record in caplog.records
                if record.name == "app.jobs.reconcile" and record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("reconcile: a admin record has no request id: {")
    assert warnings[1].startswith("reconcile: admin request bad\ufffdid: unusable record (")
    status = runner.invoke(args=["jobs", "status"]).output.splitlines()
    at = next(index for index, line in enumerate(status) if line.startswith("reconcile: "))
    assert status[at].endswith("1 tickets created, 0 decisions finalized, 0 awaiting EPM, 2 problems")
    assert status[at + 1].startswith("  Problem: a admin record has no request id: {")
    assert status[at + 2].startswith("  Problem: admin request bad\ufffdid: unusable record (")


def test_a_record_shown_in_a_problem_cut_short_says_so(epm_api):
    no_id = admin_record()
    del no_id["requestInfo"]["requestId"]
    no_id["requestInfo"]["details"] = "x" * 500
    epm_api.add(ADMIN, no_id)

    report = reconcile()

    [problem] = report.problems
    assert problem.startswith("a admin record has no request id: {") and problem.endswith("…")
    assert len(problem.split(": ", 1)[1]) == 200


def test_the_job_s_last_result_keeps_the_first_twenty_problems(epm_api, runner):
    epm_api.add(ADMIN, *({"requestInfo": {"note": f"record {n}"}} for n in range(25)))

    run_job(JOBS["reconcile"])

    kept = JobRun.get(JobRun.name == "reconcile").last_result.splitlines()
    assert kept[0].endswith("25 problems")
    assert [line.startswith("Problem: a admin record has no request id") for line in kept[1:21]] == [True] * 20
    assert "'record 19'" in kept[20]
    assert kept[21:] == ["... and 5 more problems (each is in the app log)"]


def test_records_are_read_whatever_the_key_case_and_value_types(epm_api):
    request_id = "3f0c9a52-7d1e-4b8a-9c2f-1a2b3c4d5e6f"
    epm_api.add(APPLICATION, {"Id": request_id, "RequestInfo": {"User": "CORP\\kpatel", "hostName": "LT-1",
                                                                "productName": "Tool", "uacTriggered": True},
                              "AccessDecision": {"Status": 2001, "DecisionPerformedByUser": "lead"}})

    reconcile()

    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == request_id)
    assert jit.task.requester == "CORP\\kpatel" and jit.task.subject == "Tool"
    assert jit.request_info["uacTriggered"] == "True"
    assert jit.final_decision == "Denied" and jit.final_decision_by == "lead"


# --- The command -----------------------------------------------------------------------------------


def test_the_reconcile_command_prints_what_it_changed(epm_api, runner):
    epm_api.add(APPLICATION, application_record())
    dry = runner.invoke(args=["reconcile", "--dry-run"])
    assert dry.exit_code == 0 and "Would create a ticket" in dry.output and "dry run: 1 tickets created" in dry.output
    real = runner.invoke(args=["reconcile"])
    number = Task.get().number
    assert real.exit_code == 0 and f"Created {number}" in real.output
    assert "0 tickets created, 0 decisions finalized" in runner.invoke(args=["reconcile"]).output


def test_the_reconcile_command_explains_a_missing_connection(runner):
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 1 and "PMC Service Host Name" in result.output


# --- Later states EPM shows on a final ticket (contract/epm.md 5.3) -----------------------------------


def test_an_approval_revoked_in_epm_whose_update_was_lost_reads_revoked_once(epm_api, make_ticket, deliver):
    event = factories.admin_request()
    task = make_ticket(event)
    assert deliver(factories.admin_decision(event["RequestId"])).status_code == 200  # EPM's approval arrived
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Denied", duration="1800",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:20:41Z"))

    report = reconcile()

    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", contract.EPM_OUTCOME_REVOKED)
    assert jit.final_decision_time is None, "EPM's record names no decision time: not the approval's"
    assert jit.final_end_time == datetime(2026, 11, 20, 15, 20, 41)
    assert [item["ticket"] for item in report.finalized] == [task.number]
    assert any(text.startswith("EPM revoked the approval") for text in notes(task))
    assert reconcile().changes == 0
    # The revocation's late webhook names who revoked it, and when, which EPM's record does not: it fills them in
    # and the ticket still reads Revoked; sent again, it changes nothing.
    assert deliver(factories.admin_revocation(event["RequestId"])).json["result"]["status"] == "processed"
    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.final_decision_by, jit.epm_outcome) == (
        "Denied", "secops-lead", contract.EPM_OUTCOME_REVOKED)
    assert jit.final_decision_time == datetime(2026, 11, 20, 15, 20, 40)
    assert deliver(factories.admin_revocation(event["RequestId"])).json["result"]["status"] == "duplicate"
    assert reconcile().changes == 0


def test_a_record_showing_the_state_the_ticket_holds_changes_nothing(epm_api, make_ticket, deliver):
    event = factories.admin_request()
    task = make_ticket(event)
    deliver(factories.admin_decision(event["RequestId"]))
    before = notes(task)
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Approved", duration="1800",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:42:03Z"))

    assert reconcile().changes == 0
    assert notes(task) == before


def approved_without_times_that_epm_has(epm_api, make_ticket, deliver):
    """A ticket whose approval came by a template without the session's times, and EPM's record with them."""
    event = factories.admin_request()
    task = make_ticket(event)
    approval = factories.admin_decision(event["RequestId"])
    del approval["StartTime"], approval["EndTime"]
    deliver(approval)
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Approved", duration="1800",
                                    decisionTime="2026-11-20T15:12:02Z", decisionPerformedByUser="jchen",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:42:03Z"))
    return event, task


def test_a_record_filling_in_the_times_the_ticket_lacked_says_it_filled_them_in(epm_api, make_ticket, deliver):
    event, task = approved_without_times_that_epm_has(epm_api, make_ticket, deliver)

    report = reconcile()

    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.epm_outcome, jit.conflict_decision) == ("Approved", None, None)
    assert jit.final_end_time == datetime(2026, 11, 20, 15, 42, 3)
    why = "EPM's record has the start time and end time the ticket lacked: filled them in"
    assert [(item["ticket"], item["why"]) for item in report.finalized] == [(task.number, why)]
    assert f"Finalized {task.number}: EPM shows Approved ({why})" in report.lines()
    entry = AuditEntry.get(AuditEntry.action == "reconcile_decision_finalized")
    assert entry.detail["why"] == why
    assert reconcile().changes == 0


def test_a_dry_run_says_which_times_the_record_would_fill_in(epm_api, make_ticket, deliver):
    event, task = approved_without_times_that_epm_has(epm_api, make_ticket, deliver)

    report = reconcile(dry_run=True)

    why = "EPM's record has the start time and end time the ticket lacked"
    assert [(item["ticket"], item["why"]) for item in report.finalized] == [(task.number, why)]
    assert f"Would finalize {task.number}: EPM shows Approved ({why})" in report.lines()
    assert AdminTicket.get(AdminTicket.request_id == event["RequestId"]).final_end_time is None


def test_a_session_ended_early_in_epm_is_reported_as_a_later_state_of_the_same_decision(epm_api, make_ticket,
                                                                                        deliver):
    event = factories.admin_request()
    task = make_ticket(event)
    deliver(factories.admin_decision(event["RequestId"]))  # Approved, 15:12:03 to 15:42:03
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Approved", duration="1800",
                                    decisionTime="2026-11-20T15:12:02Z", decisionPerformedByUser="jchen",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:20:00Z"))

    report = reconcile()

    why = "EPM shows a later state of the Approved decision the ticket holds; its update never arrived"
    assert [(item["ticket"], item["why"]) for item in report.finalized] == [
        (task.number, f"{why}: {contract.EPM_OUTCOME_ENDED_EARLY}")]


def test_a_record_contradicting_the_ticket_s_denial_is_reported_as_kept_as_a_conflict(
        epm_api, make_ticket, deliver):
    event = factories.admin_request()
    task = make_ticket(event)
    deliver(factories.admin_decision(event["RequestId"], Decision="Denied", DecisionPerformedByUser="secops-lead"))
    epm_api.add(ADMIN, admin_record(event["RequestId"], status="Approved", duration="1800",
                                    decisionTime="2026-11-20T15:30:00Z", decisionPerformedByUser="jchen"))

    report = reconcile()

    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.conflict_decision) == ("Denied", "Approved")
    assert [(item["ticket"], item["why"]) for item in report.finalized] == [
        (task.number, "EPM shows Approved where the ticket holds Denied; its update never arrived: kept as a "
                      "conflict")]


def test_an_approval_listed_after_its_revocation_arrived_reads_revoked_as_its_late_webhook_makes_it(
        epm_api, make_ticket, deliver):
    # The approval's webhook was lost and the revocation's came first (a list read before it came shows the same):
    # EPM's list still shows the approval. Its late webhook makes the ticket read Revoked; so does reconciliation.
    reconciled, delivered = factories.admin_request(), factories.admin_request()
    for event in (reconciled, delivered):
        make_ticket(event)
        deliver(factories.admin_revocation(event["RequestId"]))
    deliver(factories.admin_decision(delivered["RequestId"]))
    epm_api.add(ADMIN, admin_record(reconciled["RequestId"], status="Approved", decisionPerformedByUser="jchen",
                                    decisionTime="2026-11-20T15:12:02Z", duration="1800",
                                    startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:42:03Z"))

    report = reconcile()

    jits = [AdminTicket.get(AdminTicket.request_id == event["RequestId"]) for event in (reconciled, delivered)]
    for jit in jits:
        assert (jit.final_decision, jit.final_decision_by, jit.epm_outcome) == (
            "Denied", "secops-lead", contract.EPM_OUTCOME_REVOKED)
        assert assert_outcome_kept(jit.task)[0] == contract.EPM_OUTCOME_REVOKED
    told = ("EPM sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) after the newer one: the ticket "
            "now reads Revoked, as it would have in order. Nothing is sent to EPM for it.")
    assert notes(jits[0].task)[-1] == notes(jits[1].task)[-1] == told
    assert [(item["ticket"], item["decision"]) for item in report.finalized] == [(jits[0].task.number, "Approved")]
    assert report.finalized[0]["why"] == ("EPM shows Approved, older than the Denied the ticket holds: the ticket "
                                          "reads Revoked")
    # Read again, the record tells nothing new.
    before = notes(jits[0].task)
    assert reconcile().changes == 0
    assert notes(jits[0].task) == before
