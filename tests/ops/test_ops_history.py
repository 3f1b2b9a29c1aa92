"""A ticket's processing history: every step from EPM's delivery to its closing, in the order it happened."""
import responses

from app import contract
from app.configuration import update_configuration
from app.decisions import delivery
from app.jobs.reconcile import check_with_epm, reconcile
from app.models import AdminTicket, Decision, Task, WorkNote, utcnow
from tests import factories
from tests.jobs.conftest import LIST_URLS, admin_record, epm_api  # noqa: F401 - `epm_api` is a fixture
from tests.ops.conftest import APPLICATION_URL

DECISION = "/api/x_bets_pmc_jit/tickets/{}/decision"
HISTORY = "/api/x_bets_pmc_jit/tickets/{}/history"


def steps(client, auth, number):
    answer = client.get(HISTORY.format(number), headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.json["result"]["events"]


def kinds_without_notes(events):
    return [event["kind"] for event in events if event["kind"] != "work note"]


def test_history_of_a_ticket_from_delivery_to_closing(app, epm, client, deliver, approver_auth, admin_auth):
    update_configuration({"auto_close": "true"})
    request_id = "a9e1c2d3-0000-4000-8000-000000000001"
    number = deliver(factories.application_request(request_id)).json["result"]["ticket"]
    approved = client.post(DECISION.format(number), headers=approver_auth,
                           json={"decision": "Approved", "reason": "Release night", "duration_unit": "once"})
    assert approved.status_code == 201, approved.get_data(as_text=True)
    assert deliver(factories.application_decision(request_id)).json["result"]["status"] == "processed"

    events = steps(client, admin_auth, number)

    assert kinds_without_notes(events) == [
        "delivery received", "ticket created", "decision recorded", "delivery attempt", "delivery attempt",
        "decision delivered", "delivery received", "finalized by EPM", "closed",
    ]
    assert [event["at"] for event in events if event["kind"] != "finalized by EPM"] == sorted(
        event["at"] for event in events if event["kind"] != "finalized by EPM")
    by_kind = {event["kind"]: event for event in events}
    assert by_kind["decision recorded"]["summary"] == "Approved by jchen: Release night"
    attempts = [event["summary"] for event in events if event["kind"] == "delivery attempt"]
    assert attempts[0].startswith("token: POST /oauth/connect/token → 200")
    assert attempts[1].startswith(
        "application decision: POST /management-api/v2/AuthorizationRequest/notification → 200")
    assert by_kind["finalized by EPM"]["summary"] == ("EPM finalized the decision: Approved by jchen at "
                                                      "2026-11-20 14:20:44 UTC")
    notes = [event["summary"] for event in events if event["kind"] == "work note"]
    assert notes[0].startswith("Application Access request") and notes[-1].startswith("Closed automatically")


def test_each_delivery_attempt_is_a_step_of_its_own(app, epm, client, deliver, approver_auth, admin_auth):
    epm.replace(responses.POST, APPLICATION_URL, status=503, json={"message": "maintenance"})
    number = deliver(factories.application_request()).json["result"]["ticket"]
    queued = client.post(DECISION.format(number), headers=approver_auth,
                         json={"decision": "Denied", "reason": "Not on the allow list", "duration_unit": "once"})
    assert queued.status_code == 202, queued.get_data(as_text=True)
    epm.replace(responses.POST, APPLICATION_URL, json={"status": "ok"})
    delivery.retry_now(Decision.get())

    events = steps(client, admin_auth, number)

    assert kinds_without_notes(events) == [
        "delivery received", "ticket created", "decision recorded", "delivery attempt", "delivery attempt",
        "delivery attempt", "decision delivered",
    ]
    attempts = [event["summary"] for event in events if event["kind"] == "delivery attempt"]
    assert attempts[0].startswith("token: POST /oauth/connect/token → 200")
    assert attempts[1].startswith(
        "application decision: POST /management-api/v2/AuthorizationRequest/notification → 503")
    assert attempts[2].startswith(
        "application decision: POST /management-api/v2/AuthorizationRequest/notification → 200")
    assert [event["detail"]["status"] for event in events if event["kind"] == "delivery attempt"] == [200, 503, 200]
    delivered = next(event for event in events if event["kind"] == "decision delivered")
    assert delivered["summary"] == "EPM acknowledged the denied decision"


def test_an_update_that_came_first_is_finalized_after_the_ticket_is_created(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000002"
    assert deliver(factories.application_decision(request_id)).json["result"]["status"] == "received"
    number = deliver(factories.application_request(request_id)).json["result"]["ticket"]

    events = steps(client, admin_auth, number)

    assert kinds_without_notes(events) == ["delivery received", "delivery received", "ticket created",
                                           "finalized by EPM"]
    assert "URM_NATIVE_DECISION_UPDATE" in events[0]["summary"]
    assert "URM_Native_Ticket_Created" in events[1]["summary"]


def test_history_of_an_unknown_ticket_is_not_found(app, client, admin_auth):
    answer = client.get(HISTORY.format("INC0099999"), headers=admin_auth)
    assert answer.status_code == 404


def test_admins_see_the_history_on_the_ticket_page(app, as_admin, make_ticket):
    task = make_ticket()
    page = as_admin.get(f"/tickets/{task.number}").get_data(as_text=True)
    assert "Processing history" in page
    assert f"Incident {task.number} created" in page


def test_approvers_do_not_see_the_history(app, as_approver, make_ticket):
    task = make_ticket()
    page = as_approver.get(f"/tickets/{task.number}").get_data(as_text=True)
    assert "Processing history" not in page
    assert Task.select().count() == 1


def update_steps(events):
    return [(event["kind"], event["summary"]) for event in events
            if event["kind"] not in ("work note", "delivery received", "ticket created")]


def test_each_update_step_says_what_its_own_delivery_said(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000003"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id))
    deliver(factories.admin_revocation(request_id))
    deliver(factories.admin_decision(request_id, Timestamp="2026-11-20T15:30:00Z"))  # the approval re-sent

    events = steps(client, admin_auth, number)

    assert update_steps(events) == [
        ("finalized by EPM", "EPM finalized the decision: Approved by jchen at 2026-11-20 15:12:02 UTC"),
        ("updated by EPM", "EPM revoked the approval: Denied by secops-lead at 2026-11-20 15:20:40 UTC"),
        ("older update from EPM", "EPM re-sent an older update: Approved by jchen at 2026-11-20 15:12:02 UTC; "
                                  "it changed nothing, the ticket kept Revoked"),
    ]
    details = [event["detail"] for event in events if "update" in event["detail"]]
    assert [(detail["update"], detail["decision"], detail["performed_by"], detail["decision_time"], detail["outcome"])
            for detail in details] == [
        ("first", "Approved", "jchen", "2026-11-20T15:12:02", None),
        ("newer", "Denied", "secops-lead", "2026-11-20T15:20:40", "Revoked"),
        ("older", "Approved", "jchen", "2026-11-20T15:12:02", "Revoked"),
    ]


def test_an_older_approval_arriving_after_the_revocation_is_told_as_making_the_ticket_revoked(app, client, deliver,
                                                                                              admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-0000000000a1"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_revocation(request_id))
    deliver(factories.admin_decision(request_id))
    jit = Task.get(Task.number == number).jit_request
    assert jit.epm_outcome == "Revoked"
    events = steps(client, admin_auth, number)
    last = [event for event in events if "update" in event["detail"]][-1]
    assert last["detail"]["outcome"] == "Revoked"
    assert "changed nothing" not in last["summary"]
    assert last["summary"] == ("EPM sent an older update after the newer one: Approved by jchen at 2026-11-20 "
                               "15:12:02 UTC; the ticket read Revoked, as it would have in order")


def test_an_early_end_is_a_step_with_the_sessions_new_end(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000004"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id))
    deliver(factories.admin_decision(request_id, EndTime="2026-11-20T15:25:10Z", Timestamp="2026-11-20T15:25:11Z"))

    assert update_steps(steps(client, admin_auth, number))[-1] == (
        "updated by EPM", "EPM ended the session early: Approved by jchen at 2026-11-20 15:12:02 UTC, the session "
                          "ending at 2026-11-20 15:25:10 UTC")


def test_a_conflicting_update_is_a_step_saying_what_it_was_and_what_the_ticket_kept(app, client, deliver,
                                                                                    admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000005"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id, Decision="Denied", DecisionPerformedByUser="secops-lead"))
    deliver(factories.admin_decision(request_id, DecisionTime="2026-11-20T15:30:00Z"))

    assert update_steps(steps(client, admin_auth, number)) == [
        ("finalized by EPM", "EPM finalized the decision: Denied by secops-lead at 2026-11-20 15:12:02 UTC"),
        ("conflicting update from EPM", "EPM sent a conflicting update: Approved by jchen at 2026-11-20 15:30:00 UTC, "
                                        "contradicting its final decision Denied; the ticket kept Denied"),
    ]


def test_an_approval_after_the_denial_epm_acknowledged_is_a_conflict_step(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000006"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    Decision.create(task=Task.get(Task.number == number), decision="Denied", reason="Not on the change calendar",
                    decided_by="mlopez", ticket_url="https://broker.example/tickets/x", status="delivered",
                    delivered_at=utcnow())
    deliver(factories.admin_decision(request_id))
    deliver(factories.admin_revocation(request_id))  # EPM's own Denied: a duplicate of the kept denial, no step

    assert [step for step in update_steps(steps(client, admin_auth, number))
            if step[0] not in ("decision recorded", "decision delivered")] == [
        ("conflicting update from EPM", "EPM sent a conflicting update: Approved by jchen at 2026-11-20 15:12:02 UTC, "
                                        "contradicting the Denied decision by mlopez that EPM acknowledged; the "
                                        "ticket kept Denied")]


def reconciled_approval(request_id):
    """EPM's record of an Admin Access request approved by jchen, as factories.admin_decision tells it."""
    return admin_record(request_id, status="Approved", duration="1800", decisionTime="2026-11-20T15:12:02Z",
                        decisionPerformedByUser="jchen", startTime="2026-11-20T15:12:03Z",
                        endTime="2026-11-20T15:42:03Z")


def update_events(events):
    return [event for event in events if event["detail"].get("event_type") == contract.ADMIN_TICKET_UPDATED.name
            and event["kind"] != "delivery received"]


def test_a_revocation_after_a_reconciled_approval_is_a_revocation_step(
        epm_api, deliver, client, admin_auth):  # noqa: F811 - the fixture
    event = factories.admin_request()
    number = deliver(event).json["result"]["ticket"]
    # EPM's approval webhook was lost; reconciliation records it from EPM's record.
    epm_api.add(contract.KIND_ADMIN, reconciled_approval(event["RequestId"]))
    assert [item["ticket"] for item in reconcile().finalized] == [number]
    assert deliver(factories.admin_revocation(event["RequestId"])).json["result"]["status"] == "processed"
    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", contract.EPM_OUTCOME_REVOKED)

    [step] = update_events(steps(client, admin_auth, number))

    assert (step["kind"], step["summary"], step["detail"]["update"], step["detail"]["outcome"]) == (
        "updated by EPM", "EPM revoked the approval: Denied by secops-lead at 2026-11-20 15:20:40 UTC", "newer",
        contract.EPM_OUTCOME_REVOKED)


def test_a_revocation_after_an_approval_read_by_check_with_epm_is_a_revocation_step(
        epm_api, deliver, client, admin_auth):  # noqa: F811 - the fixture
    event = factories.admin_request()
    number = deliver(event).json["result"]["ticket"]
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{event['RequestId']}",
                     json=[reconciled_approval(event["RequestId"])])
    assert check_with_epm(Task.get(Task.number == number), "root").finalized == "Approved"
    deliver(factories.admin_revocation(event["RequestId"]))

    [step] = update_events(steps(client, admin_auth, number))

    assert (step["kind"], step["detail"]["outcome"]) == ("updated by EPM", contract.EPM_OUTCOME_REVOKED)
    assert step["summary"].startswith("EPM revoked the approval: Denied by secops-lead")


def test_an_approval_arriving_after_a_reconciled_revocation_is_told_as_the_ticket_reads_it(
        epm_api, deliver, client, admin_auth):  # noqa: F811 - the fixture
    event = factories.admin_request()
    number = deliver(event).json["result"]["ticket"]
    # Both webhooks late: reconciliation finds the approval already revoked in EPM, then the approval arrives.
    epm_api.add(contract.KIND_ADMIN, admin_record(event["RequestId"], status="Denied", duration="1800",
                                                  decisionTime="2026-11-20T15:20:40Z",
                                                  decisionPerformedByUser="secops-lead",
                                                  startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:20:41Z"))
    reconcile()
    deliver(factories.admin_decision(event["RequestId"]))
    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", contract.EPM_OUTCOME_REVOKED)

    [step] = update_events(steps(client, admin_auth, number))

    assert (step["kind"], step["detail"]["outcome"]) == ("older update from EPM", contract.EPM_OUTCOME_REVOKED)
    assert step["summary"] == ("EPM sent an older update after the newer one: Approved by jchen at 2026-11-20 "
                               "15:12:02 UTC; the ticket read Revoked, as it would have in order")


def revoked_by_an_older_record(api, deliver, event):
    """`event`'s revocation delivered first, then reconciliation reads EPM's record still showing the approval
    (older than the revocation): the ticket reads Revoked."""
    number = deliver(event).json["result"]["ticket"]
    assert deliver(factories.admin_revocation(event["RequestId"])).json["result"]["status"] == "processed"
    api.add(contract.KIND_ADMIN, reconciled_approval(event["RequestId"]))
    assert [item["ticket"] for item in reconcile().finalized] == [number]
    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert (jit.final_decision, jit.epm_outcome) == ("Denied", contract.EPM_OUTCOME_REVOKED)
    return number


def test_an_update_after_an_older_record_that_told_the_revocation_keeps_the_ticket_revoked(
        epm_api, deliver, client, admin_auth):  # noqa: F811 - the fixture
    event = factories.admin_request()
    number = revoked_by_an_older_record(epm_api, deliver, event)
    # EPM denies it again later: a newer Denied, which changes no outcome: the ticket still reads Revoked.
    later = factories.admin_revocation(event["RequestId"], DecisionTime="2026-11-20T15:25:00Z",
                                       Timestamp="2026-11-20T15:25:02Z")
    assert deliver(later).json["result"]["status"] == "processed"
    jit = AdminTicket.get(AdminTicket.request_id == event["RequestId"])
    assert jit.epm_outcome == contract.EPM_OUTCOME_REVOKED

    step = update_events(steps(client, admin_auth, number))[-1]

    assert (step["kind"], step["detail"]["update"], step["detail"]["outcome"]) == (
        "updated by EPM", "newer", contract.EPM_OUTCOME_REVOKED)
    assert step["summary"] == "EPM updated its final decision: Denied by secops-lead at 2026-11-20 15:25:00 UTC"


def test_the_approvals_late_webhook_after_an_older_record_that_told_the_revocation_changed_nothing(
        epm_api, deliver, client, admin_auth):  # noqa: F811 - the fixture
    event = factories.admin_request()
    number = revoked_by_an_older_record(epm_api, deliver, event)
    assert deliver(factories.admin_decision(event["RequestId"])).json["result"]["status"] == "processed"
    last_note = WorkNote.select().join(Task).where(Task.number == number).order_by(WorkNote.id.desc()).first()
    assert last_note.text.endswith("that changes nothing: the ticket keeps Revoked.")

    step = update_events(steps(client, admin_auth, number))[-1]

    assert (step["kind"], step["detail"]["update"], step["detail"]["outcome"]) == (
        "older update from EPM", "older", contract.EPM_OUTCOME_REVOKED)
    assert step["summary"] == ("EPM re-sent an older update: Approved by jchen at 2026-11-20 15:12:02 UTC; it changed "
                               "nothing, the ticket kept Revoked")


def test_an_update_whose_decision_is_unreadable_is_a_step_naming_the_text_it_got(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000007"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id, Decision="Aproved"))  # a template's typo: no decision

    [step] = update_steps(steps(client, admin_auth, number))

    assert step == ("update from EPM without a decision",
                    'EPM sent an update whose Decision "Aproved" is neither Approved nor Denied: no decision by '
                    "jchen at 2026-11-20 15:12:02 UTC; the ticket kept awaiting EPM's final decision")


def test_an_unreadable_decision_after_the_final_one_is_named_in_its_step(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000008"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id))
    deliver(factories.admin_decision(request_id, Decision="{decision}", EndTime="2026-11-20T15:25:10Z",
                                     Timestamp="2026-11-20T15:25:11Z"))  # End Session, its Decision unreplaced

    step = update_steps(steps(client, admin_auth, number))[-1]

    assert step == ("updated by EPM", 'EPM ended the session early: no decision (Decision "{decision}", neither '
                                      "Approved nor Denied) by jchen at 2026-11-20 15:12:02 UTC, the session ending "
                                      "at 2026-11-20 15:25:10 UTC")


def test_a_long_unreadable_decision_is_clipped_in_its_step(app, client, deliver, admin_auth):
    request_id = "a9e1c2d3-0000-4000-8000-000000000009"
    number = deliver(factories.admin_request(request_id)).json["result"]["ticket"]
    deliver(factories.admin_decision(request_id, Decision="Approved " + "x" * 500))

    [event] = [event for event in steps(client, admin_auth, number)
               if event["kind"] == "update from EPM without a decision"]

    shown = "Approved " + "x" * 90 + "…"
    assert f'whose Decision "{shown}" is neither' in event["summary"]
    assert event["detail"]["unreadable_decision"] == shown
