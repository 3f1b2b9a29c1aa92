"""Updates after EPM's final decision (contract/epm.md 5.3): revocations and early ends are newer events, an older
update re-sent changes nothing, a true duplicate stays one, and an approval after an acknowledged denial is a conflict.
None of them sends anything to EPM."""
import logging

import pytest

from app import contract
from app.audit.models import AuditEntry
from app.models import AdminTicket, ApplicationAccessTicket, Decision, IncomingRequest, WorkNote, utcnow
from app.tickets import service as tickets
from tests import factories

CONFLICT_LOGGER = "app.tickets.service"


def incoming(answer):
    return IncomingRequest.get(IncomingRequest.sys_id == answer.json["result"]["incoming_request"])


def status_of(answer):
    return incoming(answer).status


def admin_jit(request_id):
    return AdminTicket.get(AdminTicket.request_id == request_id)


def notes(jit):
    return [note.text for note in WorkNote.select().where(WorkNote.task == jit.task_id).order_by(WorkNote.id)]


def conflict_warnings(caplog):
    return [record for record in caplog.records
            if record.name == CONFLICT_LOGGER and record.levelno == logging.WARNING]


def acknowledged_denial(jit):
    """The broker's Denied decision on the ticket, delivered to EPM (EPM answered 2xx)."""
    return Decision.create(task=jit.task_id, decision=contract.DECISION_DENIED, reason="Not on the change calendar",
                           decided_by="jchen", ticket_url="https://broker.example/tickets/x",
                           status=contract.DELIVERY_DELIVERED, delivered_at=utcnow())


def test_a_revocation_after_the_approval_is_recorded_as_the_newer_state(deliver):
    deliver(factories.admin_request(request_id="rev-1"))
    approval = deliver(factories.admin_decision("rev-1"))
    revoked = deliver(factories.admin_revocation("rev-1"))
    assert [status_of(approval), status_of(revoked)] == [contract.INCOMING_PROCESSED] * 2
    assert revoked.json["result"]["ticket"] == approval.json["result"]["ticket"]
    jit = admin_jit("rev-1")
    assert (jit.final_decision, jit.final_decision_by, jit.epm_outcome) == ("Denied", "secops-lead", "Revoked")
    assert (jit.final_decision_time.isoformat(), jit.final_end_time.isoformat()) == (
        "2026-11-20T15:20:40", "2026-11-20T15:20:41")
    texts = notes(jit)
    assert any(text.startswith("EPM finalized the decision: Approved by jchen, duration 30 minutes, from ")
               for text in texts), "durations read in words, not EPM's seconds"
    assert ("EPM revoked the approval: Denied by secops-lead at 2026-11-20 15:20:40 UTC; the session ended at "
            "2026-11-20 15:20:41 UTC. Nothing is sent to EPM for it.") in texts
    entry = AuditEntry.get(AuditEntry.action == tickets.AUDIT_EPM_UPDATE)
    assert (entry.object_id, entry.detail["outcome"], entry.detail["old"], entry.detail["new"]) == (
        jit.task.number, "Revoked", "Approved", "Denied")
    assert Decision.select().count() == 0


def test_the_approval_resent_after_its_revocation_changes_nothing(deliver):
    deliver(factories.admin_request(request_id="rev-2"))
    deliver(factories.admin_decision("rev-2"))
    deliver(factories.admin_revocation("rev-2"))
    again = deliver(factories.admin_decision("rev-2", Timestamp="2026-11-20T15:30:00Z"))
    assert status_of(again) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-2")
    assert incoming(again).task_id == jit.task_id
    assert (jit.final_decision, jit.epm_outcome, jit.final_end_time.isoformat()) == (
        "Denied", "Revoked", "2026-11-20T15:20:41")
    assert notes(jit)[-1] == ("EPM re-sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) that "
                              "changes nothing: the ticket keeps Revoked.")
    assert Decision.select().count() == 0


def test_the_same_revocation_twice_is_a_duplicate_and_adds_no_note(deliver):
    deliver(factories.admin_request(request_id="rev-3"))
    deliver(factories.admin_decision("rev-3"))
    deliver(factories.admin_revocation("rev-3"))
    before = notes(admin_jit("rev-3"))
    again = deliver(factories.admin_revocation("rev-3", Timestamp="2026-11-20T15:25:00Z",
                                               DecisionPerformedByUser="someone-else"))
    assert status_of(again) == contract.INCOMING_DUPLICATE
    jit = admin_jit("rev-3")
    assert notes(jit) == before
    assert (jit.final_decision_by, jit.epm_outcome) == ("secops-lead", "Revoked")


def test_ending_the_session_early_keeps_the_approval_and_reads_ended_early(deliver):
    deliver(factories.admin_request(request_id="rev-4"))
    deliver(factories.admin_decision("rev-4"))
    ended = deliver(factories.admin_decision("rev-4", EndTime="2026-11-20T15:25:10Z",
                                             Timestamp="2026-11-20T15:25:11Z"))
    assert status_of(ended) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-4")
    assert (jit.final_decision, jit.epm_outcome, jit.final_end_time.isoformat()) == (
        "Approved", "Ended early", "2026-11-20T15:25:10")
    assert notes(jit)[-1] == ("EPM ended the session early: it ended at 2026-11-20 15:25:10 UTC instead of "
                              "2026-11-20 15:42:03 UTC (reported by jchen). Nothing is sent to EPM for it.")
    # The first update re-sent (its later EndTime is the earlier state) changes nothing.
    deliver(factories.admin_decision("rev-4"))
    jit = admin_jit("rev-4")
    assert (jit.epm_outcome, jit.final_end_time.isoformat()) == ("Ended early", "2026-11-20T15:25:10")
    assert "re-sent an older update" in notes(jit)[-1]
    assert Decision.select().count() == 0


@pytest.mark.parametrize("blank", ["", "%%Decision%%", "%%DECISION%%", "{decision}"])
def test_a_later_update_without_a_decision_keeps_the_recorded_one(deliver, blank):
    # EPM's template with its Decision placeholder left unfilled: no value, so not a change of decision.
    deliver(factories.admin_request(request_id="rev-blank"))
    deliver(factories.admin_decision("rev-blank"))
    before = notes(admin_jit("rev-blank"))
    again = deliver(factories.admin_decision("rev-blank", Decision=blank))
    assert status_of(again) == contract.INCOMING_DUPLICATE
    jit = admin_jit("rev-blank")
    assert (jit.final_decision, jit.epm_outcome, jit.task.outcome) == ("Approved", None, "Approved")
    assert notes(jit) == before
    # ... and what it does carry still tells: the session ended early.
    ended = deliver(factories.admin_decision("rev-blank", Decision=blank, EndTime="2026-11-20T15:25:10Z"))
    assert status_of(ended) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-blank")
    assert (jit.final_decision, jit.epm_outcome, jit.task.outcome) == ("Approved", "Ended early", "Ended early")


def test_a_later_application_update_without_a_decision_keeps_the_denial(deliver):
    deliver(factories.application_request(request_id="app-blank"))
    deliver(factories.application_decision("app-blank", Decision="Denied"))
    again = deliver(factories.application_decision("app-blank", Decision="%%decision%%"))
    assert status_of(again) == contract.INCOMING_DUPLICATE
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-blank")
    assert (jit.final_decision, jit.task.outcome) == ("Denied", "Denied")


def test_a_missing_time_matches_but_one_the_ticket_lacks_is_filled_in(deliver):
    # A decision known without its times (as reconciled from EPM's list) and its late webhook with them: the same
    # decision, and not a duplicate (5.3: its DecisionTime and EndTime differ), so the times are filled in once.
    deliver(factories.admin_request(request_id="rev-5"))
    bare = factories.admin_revocation("rev-5")
    del bare["DecisionTime"], bare["EndTime"]
    deliver(bare)
    late = deliver(factories.admin_revocation("rev-5"))
    assert status_of(late) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-5")
    assert (jit.final_decision, jit.final_decision_time.isoformat(), jit.final_end_time.isoformat()) == (
        "Denied", "2026-11-20T15:20:40", "2026-11-20T15:20:41")
    assert sum("finalized" in text for text in notes(jit)) == 1
    # The other way round, an update lacking a time the ticket holds is the recorded state again.
    for name in ("DecisionTime", "EndTime", "StartTime"):
        again = factories.admin_revocation("rev-5")
        del again[name]
        assert status_of(deliver(again)) == contract.INCOMING_DUPLICATE
    assert status_of(deliver(factories.admin_revocation("rev-5"))) == contract.INCOMING_DUPLICATE
    assert len(notes(admin_jit("rev-5"))) == len(notes(jit))


def test_an_approval_resent_with_the_session_times_the_ticket_lacks_fills_them_in(deliver):
    # EPM's approval sent before the session started carries no times; the update that has them is recorded.
    deliver(factories.admin_request(request_id="rev-times"))
    deliver(factories.admin_decision("rev-times", StartTime="", EndTime="", DecisionTime=""))
    later = deliver(factories.admin_decision("rev-times"))
    assert status_of(later) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-times")
    assert (jit.final_decision, jit.epm_outcome, jit.final_decision_time.isoformat(),
            jit.final_start_time.isoformat(), jit.final_end_time.isoformat()) == (
        "Approved", None, "2026-11-20T15:12:02", "2026-11-20T15:12:03", "2026-11-20T15:42:03")
    assert sum("finalized" in text for text in notes(jit)) == 1
    assert notes(jit)[-1] == ("EPM updated its final decision: Approved by jchen at 2026-11-20 15:12:02 UTC, "
                              "ending at 2026-11-20 15:42:03 UTC. Nothing is sent to EPM for it.")
    assert status_of(deliver(factories.admin_decision("rev-times"))) == contract.INCOMING_DUPLICATE, \
        "nothing left to fill in"


def test_the_same_decision_by_another_decider_fills_in_nothing(deliver):
    # The broker's denial EPM acknowledged is kept over EPM's approval; EPM's own Denied by someone else is another
    # decision of that value, not the kept one told in full: its times are not the ticket's.
    deliver(factories.admin_request(request_id="rev-kept"))
    acknowledged_denial(admin_jit("rev-kept"))
    deliver(factories.admin_decision("rev-kept"))
    before = notes(admin_jit("rev-kept"))
    own = deliver(factories.admin_revocation("rev-kept"))
    assert status_of(own) == contract.INCOMING_DUPLICATE
    jit = admin_jit("rev-kept")
    assert (jit.final_decision, jit.final_decision_by, jit.final_decision_time, jit.final_end_time) == (
        "Denied", "jchen", None, None)
    assert notes(jit) == before


def test_an_approval_after_a_denial_epm_acknowledged_is_a_conflict(deliver, caplog):
    deliver(factories.admin_request(request_id="rev-6"))
    jit = admin_jit("rev-6")
    acknowledged_denial(jit)
    with caplog.at_level(logging.WARNING):
        answer = deliver(factories.admin_decision("rev-6"))
        again = deliver(factories.admin_decision("rev-6"))
    assert (status_of(answer), status_of(again)) == (contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE)
    jit = admin_jit("rev-6")
    assert (jit.decision_final, jit.final_decision, jit.conflict_decision, jit.conflict_by) == (
        True, "Denied", "Approved", "jchen")
    [warning] = conflict_warnings(caplog)
    for text in (jit.task.number, "rev-6", "Approved", "Denied"):
        assert text in warning.getMessage()
    assert "Conflict: EPM sent Approved by jchen" in notes(jit)[-1]
    assert AuditEntry.get(AuditEntry.action == tickets.AUDIT_EPM_CONFLICT).detail["kept"] == "Denied"
    assert Decision.select().count() == 1


def test_an_approval_after_epms_own_denial_is_a_conflict(deliver, caplog):
    deliver(factories.admin_request(request_id="rev-7"))
    deliver(factories.admin_decision("rev-7", Decision="Denied"))
    with caplog.at_level(logging.WARNING):
        deliver(factories.admin_decision("rev-7", DecisionTime="2026-11-20T15:30:00Z"))
    jit = admin_jit("rev-7")
    assert (jit.final_decision, jit.conflict_decision, jit.epm_outcome) == ("Denied", "Approved", None)
    assert jit.conflict_decision_time.isoformat() == "2026-11-20T15:30:00"
    assert len(conflict_warnings(caplog)) == 1
    assert Decision.select().count() == 0


def test_waiting_updates_follow_the_same_rules_in_arrival_order(deliver):
    answers = [deliver(factories.admin_decision("rev-8")), deliver(factories.admin_revocation("rev-8")),
               deliver(factories.admin_decision("rev-8")), deliver(factories.admin_revocation("rev-8"))]
    assert {status_of(answer) for answer in answers} == {contract.INCOMING_RECEIVED}
    deliver(factories.admin_request(request_id="rev-8"))
    assert [status_of(answer) for answer in answers] == [contract.INCOMING_PROCESSED] * 3 + [
        contract.INCOMING_DUPLICATE]
    jit = admin_jit("rev-8")
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", "Revoked")
    starts = ("EPM finalized the decision: Approved", "EPM revoked the approval", "EPM re-sent an older update")
    texts = notes(jit)[1:]
    assert len(texts) == len(starts) and all(text.startswith(start) for text, start in zip(texts, starts)), texts
    assert Decision.select().count() == 0


def test_a_revocation_waiting_before_its_approval_keeps_the_ticket_denied(deliver):
    deliver(factories.admin_revocation("rev-9"))
    deliver(factories.admin_decision("rev-9"))
    deliver(factories.admin_request(request_id="rev-9"))
    jit = admin_jit("rev-9")
    assert (jit.final_decision, jit.final_decision_by, jit.conflict_decision) == ("Denied", "secops-lead", None)
    assert (jit.epm_outcome, jit.task.outcome) == ("Revoked", "Revoked"), "the approval tells the denial revoked it"
    assert "after the newer one: the ticket now reads Revoked" in notes(jit)[-1]


def test_updates_arriving_out_of_order_read_as_they_do_in_order(deliver):
    # The revocation before the approval it revoked: Revoked, as in order.
    deliver(factories.admin_request(request_id="rev-late-approval"))
    deliver(factories.admin_revocation("rev-late-approval"))
    late = deliver(factories.admin_decision("rev-late-approval"))
    assert status_of(late) == contract.INCOMING_PROCESSED
    jit = admin_jit("rev-late-approval")
    assert (jit.final_decision, jit.epm_outcome, jit.task.outcome) == ("Denied", "Revoked", "Revoked")
    assert notes(jit)[-1] == ("EPM sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) after the "
                              "newer one: the ticket now reads Revoked, as it would have in order. Nothing is sent "
                              "to EPM for it.")
    # The early end before the approval's original end: Ended early, as in order.
    deliver(factories.admin_request(request_id="rev-late-end"))
    deliver(factories.admin_decision("rev-late-end", EndTime="2026-11-20T15:25:10Z"))
    deliver(factories.admin_decision("rev-late-end"))
    jit = admin_jit("rev-late-end")
    assert (jit.final_decision, jit.epm_outcome, jit.final_end_time.isoformat()) == (
        "Approved", "Ended early", "2026-11-20T15:25:10")
    assert jit.task.outcome == "Ended early"
    # Application Access has no revocation: a Denied before the earlier approval it followed reads Changed,
    # as in order (test_an_application_decision_denied_after_approval_is_changed_not_revoked).
    deliver(factories.application_request(request_id="app-late"))
    deliver(factories.application_decision("app-late", Decision="Denied", DecisionTime="2026-11-20T16:00:00Z"))
    deliver(factories.application_decision("app-late"))
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-late")
    assert (jit.final_decision, jit.epm_outcome, jit.task.outcome) == ("Denied", "Changed", "Changed")


def test_an_application_decision_denied_after_approval_is_changed_not_revoked(deliver):
    deliver(factories.application_request(request_id="app-rev-1"))
    deliver(factories.application_decision("app-rev-1"))
    later = deliver(factories.application_decision("app-rev-1", Decision="Denied",
                                                   DecisionTime="2026-11-20T16:00:00Z"))
    assert status_of(later) == contract.INCOMING_PROCESSED
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-rev-1")
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", "Changed")
    assert notes(jit)[-1].startswith("EPM changed its final decision from Approved to Denied")
    assert Decision.select().count() == 0


def test_a_denial_after_the_approval_epm_acknowledged_reads_revoked(deliver):
    deliver(factories.admin_request(request_id="rev-10"))
    jit = admin_jit("rev-10")
    Decision.create(task=jit.task_id, decision=contract.DECISION_APPROVED, reason="Patch Tuesday", decided_by="jchen",
                    ticket_url="https://broker.example/tickets/x", status=contract.DELIVERY_DELIVERED,
                    delivered_at=utcnow())
    deliver(factories.admin_revocation("rev-10"))
    deliver(factories.admin_decision("rev-10"))  # EPM's update for the approval, late
    jit = admin_jit("rev-10")
    assert (jit.final_decision, jit.epm_outcome, jit.conflict_decision) == ("Denied", "Revoked", None)
    assert notes(jit)[-2].startswith("EPM revoked the approval by jchen it had acknowledged: Denied by secops-lead")
    assert "re-sent an older update" in notes(jit)[-1]
    assert Decision.select().count() == 1
