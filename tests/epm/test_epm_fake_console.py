"""The fake EPM's console: decisions made in EPM itself, revoked and ended Admin Access sessions (5.3), the
webhooks a broker missed, and events sent under another Content-Type (5.5), each checked at a loopback
receiver for exactly the webhooks EPM would send."""
import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from app import contract
from app.epm.client import EpmClient
from app.epm.errors import EpmDecidedOtherwise
from app.epm.fake import CONTROL_PREFIX, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEpm, FakeEpmError
from app.epm.payloads import admin_decision_body
from tests.epm.fake_http import V3_ADMIN, V3_APPLICATION, Api

# The keys of contract/epm.md §1's JIT_ADMIN_TICKET_UPDATED, as in tests' fixture admin_ticket_revoked.json.
ADMIN_UPDATE_KEYS = {"EventType", "RequestId", "TicketNumber", "TenantId", "StartTime", "EndTime", "Decision",
                     "DecisionTime", "DecisionPerformedByUser", "Duration", "DurationRequested", "Timestamp"}
AN_HOUR_AGO = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def fake(webhook_receiver):
    with FakeEpm(broker_url=webhook_receiver.url, webhook_user="epm", webhook_password="hook-pass") as running:
        yield running


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def when(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def approved_admin_request(fake, duration="7200", at=AN_HOUR_AGO):
    """An Admin Access request approved in the console an hour ago for two hours (no webhook sent)."""
    request_id = fake.add_request(contract.KIND_ADMIN, DurationRequested=duration)["RequestId"]
    fake.decide(request_id, "Approved", by="jchen", at=at)
    return request_id


# --- decide ------------------------------------------------------------------------------------------


def test_a_console_decision_changes_the_record_and_sends_nothing_by_default(fake, webhook_receiver):
    request_id = fake.add_request(contract.KIND_APPLICATION)["RequestId"]
    event = fake.decide(request_id, "Denied", by="epm-admin", at=datetime(2026, 11, 22, 5, 3, 10, tzinfo=timezone.utc))
    record = Api(fake).get(f"{V3_APPLICATION}/{request_id}").json()
    assert webhook_receiver.received == []
    assert record["accessDecision"] == {"status": "Denied", "decision": "Denied", "decisionPerformedByUser":
                                        "epm-admin", "decisionTime": "2026-11-22 05:03:10", "duration": "Once"}
    assert record["serviceTicket"] == {"ticketId": None, "systemId": None, "url": None}
    assert (event["EventType"], event["requestInfo"]["Decision"]) == (contract.URM_DECISION_UPDATE.name, "Denied")
    assert event["requestInfo"]["DecisionTime"] == "2026-11-22T05:03:10Z"


def test_a_console_decision_with_notify_sends_its_update_event(fake, webhook_receiver):
    request_id = fake.add_request(contract.KIND_APPLICATION)["RequestId"]
    event = fake.decide(request_id, "Approved", by="epm-admin", duration="3600", notify=True)
    assert webhook_receiver.events() == [event]
    assert event["requestInfo"]["Duration"] == "3600"
    assert event["requestInfo"]["DecisionPerformedByUser"] == "epm-admin"


def test_a_console_admin_approval_opens_the_requested_session(fake):
    request_id = approved_admin_request(fake, duration="1800")
    decision = Api(fake).get(f"{V3_ADMIN}/{request_id}").json()["accessDecision"]
    assert (decision["status"], decision["duration"], decision["decisionPerformedByUser"]) == (
        "Approved", "1800", "jchen")
    assert (decision["startTime"], decision["endTime"]) == (iso(AN_HOUR_AGO), iso(AN_HOUR_AGO + timedelta(
        seconds=1800)))


def test_the_broker_cannot_decide_a_request_decided_in_the_console(fake):
    request_id = approved_admin_request(fake)
    body = admin_decision_body(decision="Denied", performed_by="alice", duration=None, request_id=request_id,
                               reason="no", sys_id="1" * 32, ticket_number="INC0010002",
                               ticket_url="http://127.0.0.1:8000/tickets/INC0010002")
    with pytest.raises(EpmDecidedOtherwise) as raised:
        EpmClient(fake.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=5).send_admin_decision(body, "key-1")
    assert (fake.calls[0].status, fake.applied_count) == (409, 0)
    assert (raised.value.record.decision, raised.value.record.decided_by) == ("Approved", "jchen")


def test_deciding_twice_in_the_console_is_refused(fake):
    request_id = approved_admin_request(fake)
    with pytest.raises(ValueError, match="already been decided"):
        fake.decide(request_id, "Denied")


def test_a_console_decision_names_approved_or_denied(fake):
    request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
    with pytest.raises(ValueError, match="decision must be one of Approved, Denied"):
        fake.decide(request_id, "Maybe")


def test_an_unknown_request_is_a_key_error(fake):
    for action in (lambda: fake.decide("nope", "Approved"), lambda: fake.revoke("nope"),
                   lambda: fake.end_session("nope"), lambda: fake.send_missed("nope")):
        with pytest.raises(KeyError, match="knows no request nope"):
            action()


# --- revoke ----------------------------------------------------------------------------------------


def test_revoke_denies_an_approved_session_and_sends_one_update(fake, webhook_receiver):
    request_id = approved_admin_request(fake)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    returned = fake.revoke(request_id, by="secops-lead")
    [event] = webhook_receiver.events()
    assert event == returned
    assert set(event) == ADMIN_UPDATE_KEYS
    assert (event["EventType"], event["RequestId"], event["Decision"], event["DecisionPerformedByUser"]) == (
        contract.ADMIN_TICKET_UPDATED.name, request_id, "Denied", "secops-lead")
    assert (event["StartTime"], event["Duration"], event["DurationRequested"]) == (iso(AN_HOUR_AGO), "7200", "7200")
    assert when(event["DecisionTime"]) >= before
    assert event["EndTime"] == event["DecisionTime"]


def test_a_revoked_record_reads_denied_and_ended(fake):
    request_id = approved_admin_request(fake)
    event = fake.revoke(request_id, by="secops-lead")
    decision = Api(fake).get(f"{V3_ADMIN}/{request_id}").json()["accessDecision"]
    assert (decision["status"], decision["decision"], decision["decisionPerformedByUser"]) == (
        "Denied", "Denied", "secops-lead")
    assert (decision["startTime"], decision["endTime"], decision["duration"]) == (
        iso(AN_HOUR_AGO), event["EndTime"], "7200")


def test_revoke_without_notify_sends_nothing(fake, webhook_receiver):
    fake.revoke(approved_admin_request(fake), notify=False)
    assert webhook_receiver.received == []


@pytest.mark.parametrize("state", ["pending", "denied", "application"])
def test_revoke_is_refused_unless_an_admin_session_is_approved(fake, webhook_receiver, state):
    kind = contract.KIND_APPLICATION if state == "application" else contract.KIND_ADMIN
    request_id = fake.add_request(kind)["RequestId"]
    if state != "pending":
        fake.decide(request_id, "Denied" if state == "denied" else "Approved")
    with pytest.raises(ValueError, match="Application Access" if state == "application" else "not approved"):
        fake.revoke(request_id)
    assert webhook_receiver.received == []


# --- end_session -------------------------------------------------------------------------------------


def test_end_session_ends_early_and_keeps_the_decision(fake, webhook_receiver):
    request_id = approved_admin_request(fake)
    planned_end = AN_HOUR_AGO + timedelta(hours=2)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    fake.end_session(request_id)
    [event] = webhook_receiver.events()
    assert set(event) == ADMIN_UPDATE_KEYS
    assert (event["Decision"], event["DecisionPerformedByUser"], event["DecisionTime"], event["StartTime"]) == (
        "Approved", "jchen", iso(AN_HOUR_AGO), iso(AN_HOUR_AGO))
    assert before <= when(event["EndTime"]) < planned_end
    decision = Api(fake).get(f"{V3_ADMIN}/{request_id}").json()["accessDecision"]
    assert (decision["status"], decision["endTime"]) == ("Approved", event["EndTime"])


def test_end_session_is_refused_for_a_pending_request(fake):
    with pytest.raises(ValueError, match="not approved"):
        fake.end_session(fake.add_request(contract.KIND_ADMIN)["RequestId"])


# --- send_missed ---------------------------------------------------------------------------------------


def test_send_missed_sends_only_the_created_event_of_a_pending_request(fake, webhook_receiver):
    created = fake.add_request(contract.KIND_APPLICATION)
    assert fake.send_missed(created["RequestId"]) == [created]
    assert webhook_receiver.events() == [created]


def test_send_missed_sends_the_created_and_the_current_update_event(fake, webhook_receiver):
    request_id = approved_admin_request(fake)
    fake.revoke(request_id, by="secops-lead", notify=False)
    created, update = fake.send_missed(request_id)
    assert webhook_receiver.events() == [created, update]
    assert (created["EventType"], update["EventType"]) == (contract.ADMIN_TICKET_CREATED.name,
                                                           contract.ADMIN_TICKET_UPDATED.name)
    assert (update["Decision"], update["DecisionPerformedByUser"]) == ("Denied", "secops-lead")


# --- send_event and its Content-Type ----------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/plain", "text/json", "application/json; charset=utf-8"])
def test_send_event_can_use_another_content_type(fake, webhook_receiver, content_type):
    event = fake.add_request(contract.KIND_ADMIN)
    fake.send_event(event, content_type=content_type)
    [record] = webhook_receiver.received
    assert record["headers"]["Content-Type"] == content_type
    assert record["headers"]["Authorization"].startswith("Basic ")


def test_send_event_can_send_no_content_type(fake, webhook_receiver):
    event = fake.add_request(contract.KIND_ADMIN)
    fake.send_event(event, content_type="")
    [record] = webhook_receiver.received
    assert "Content-Type" not in record["headers"]
    assert int(record["headers"]["Content-Length"]) == len(json.dumps(event).encode())


def test_send_event_sends_raw_bytes_as_they_are_even_when_not_json(fake, webhook_receiver):
    body = b'{"EventType": "JIT_ADMIN_TICKET_CREATED", "RequestId": "r-1"'
    with pytest.raises(FakeEpmError, match="HTTP 400"):
        webhook_receiver.status = 400
        fake.send_event(body, content_type="text/plain")
    [record] = webhook_receiver.received
    assert (record["headers"]["Content-Type"], int(record["headers"]["Content-Length"])) == ("text/plain", len(body))
    assert fake.webhooks == [(None, None, 400)]


# --- The control routes -----------------------------------------------------------------------------


def control(fake, request_id, action, **options):
    return requests.post(f"{fake.url}{CONTROL_PREFIX}/requests/{request_id}/{action}", json=options, timeout=5)


def test_the_control_routes_decide_and_revoke(fake, webhook_receiver):
    request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
    decided = control(fake, request_id, "decide", decision="Approved", by="jchen", notify=True)
    revoked = control(fake, request_id, "revoke", by="secops-lead")
    assert (decided.status_code, revoked.status_code) == (200, 200)
    assert [event["Decision"] for event in webhook_receiver.events()] == ["Approved", "Denied"]
    assert revoked.json()["events"] == [webhook_receiver.events()[1]]


def test_the_control_routes_end_a_session_and_send_missed_events(fake, webhook_receiver):
    request_id = approved_admin_request(fake)
    assert control(fake, request_id, "end-session").status_code == 200
    missed = control(fake, request_id, "send-missed")
    assert missed.status_code == 200
    assert [event["EventType"] for event in webhook_receiver.events()] == [
        contract.ADMIN_TICKET_UPDATED.name, contract.ADMIN_TICKET_CREATED.name, contract.ADMIN_TICKET_UPDATED.name]


def test_the_control_routes_refuse_clearly(fake, webhook_receiver):
    pending = fake.add_request(contract.KIND_ADMIN)["RequestId"]
    assert control(fake, "nope", "revoke").status_code == 404
    assert control(fake, pending, "explode").status_code == 404
    refused = control(fake, pending, "revoke")
    assert (refused.status_code, refused.json()["message"]) == (400, f"Request {pending} is not approved (pending): "
                                                                     "only an approved session can be revoked")
    assert control(fake, pending, "decide", decision="Approved", colour="red").status_code == 400
    assert webhook_receiver.received == []


def test_a_control_route_reports_a_broker_refusing_the_webhook(fake, webhook_receiver):
    request_id = approved_admin_request(fake)
    webhook_receiver.status = 503
    answer = control(fake, request_id, "revoke")
    assert (answer.status_code, "HTTP 503" in answer.json()["message"]) == (502, True)
    assert Api(fake).get(f"{V3_ADMIN}/{request_id}").json()["accessDecision"]["status"] == "Denied"
