"""The fake EPM on a real loopback socket, driven by the real EpmClient and firing real webhooks."""
import base64
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from app import contract
from app.epm import tokens
from app.epm.client import EpmClient
from app.epm.errors import EpmAuthFailed, EpmDecidedOtherwise, EpmRejected, EpmRetryable, EpmUnreachable
from app.epm.fake import CONTROL_PREFIX, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEpm, FakeEpmError
from app.epm.payloads import admin_decision_body, application_decision_body
from tests.live import ROOT, free_port, ignoring_sigint


@pytest.fixture
def fake():
    with FakeEpm() as running:
        yield running


def client_for(fake, secret=DEFAULT_CLIENT_SECRET, timeout=5):
    return EpmClient(fake.url, DEFAULT_CLIENT_ID, secret, timeout=timeout)


def application_body(request_id, decision="Approved", duration="3600"):
    return application_decision_body(
        decision=decision, performed_by="jchen", duration=duration, request_id=request_id,
        decision_time=datetime(2026, 11, 20, 14, 20, 44), reason="ok", sys_id="0" * 32, ticket_number="INC0010001",
        ticket_url="http://127.0.0.1:8000/tickets/INC0010001")


def admin_body(request_id, decision="Approved", duration="1800"):
    return admin_decision_body(decision=decision, performed_by="jchen", duration=duration, request_id=request_id,
                               reason="printer driver", sys_id="1" * 32, ticket_number="INC0010002",
                               ticket_url="http://127.0.0.1:8000/tickets/INC0010002")


def new_application_request(fake):
    return fake.add_request(contract.KIND_APPLICATION)["RequestId"]


# --- Tokens and decisions --------------------------------------------------------------------


def test_a_decision_is_applied_with_a_token_from_the_fake(fake):
    request_id = new_application_request(fake)
    body = application_body(request_id)
    assert client_for(fake).send_application_decision(body, "key-1") == {}
    assert fake.decision_for(request_id) == body
    assert (fake.token_requests, fake.received_count, fake.applied_count) == (1, 1, 1)
    assert fake.calls[0].idempotency_key == "key-1"


def test_a_resent_decision_is_acknowledged_but_applied_once(fake):
    request_id = new_application_request(fake)
    client = client_for(fake)
    client.send_application_decision(application_body(request_id), "key-1")
    client.send_application_decision(application_body(request_id), "key-1")
    assert (fake.received_count, fake.applied_count) == (2, 1)


def test_another_decision_for_a_decided_request_is_refused_with_epm_s_own(fake):
    request_id = new_application_request(fake)
    client = client_for(fake)
    client.send_application_decision(application_body(request_id), "key-1")
    with pytest.raises(EpmDecidedOtherwise, match="The Denied decision sent from here was not applied") as raised:
        client.send_application_decision(application_body(request_id, "Denied", None), "key-2")
    assert fake.calls[1].status == 409
    assert raised.value.record.decision == fake.decision_for(request_id)["decision"] == "Approved"


@pytest.mark.parametrize("strict", [False, True])
def test_the_same_decision_answered_already_decided_is_acknowledged_by_the_record(strict):
    with FakeEpm(strict=strict) as fake:
        request_id = new_application_request(fake)
        client = client_for(fake)
        client.send_application_decision(application_body(request_id), "key-1")
        answer = client.send_application_decision(application_body(request_id), "key-2")
        assert {key: answer[key] for key in ("type", "title", "status")} == {
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.10", "title": "Conflict", "status": 409}
        assert [call.status for call in fake.calls] == [200, 409]


def test_a_2xx_after_the_client_timed_out_is_applied_once_when_resent(fake):
    request_id = new_application_request(fake)
    client = client_for(fake, timeout=0.3)
    client.test_connection()  # the token fetch is not what should time out
    fake.delay_next(1.5)
    with pytest.raises(EpmRetryable, match="did not answer"):
        client.send_application_decision(application_body(request_id), "key-1")
    assert fake.applied_count == 1
    client.send_application_decision(application_body(request_id), "key-1")
    assert (fake.received_count, fake.applied_count) == (2, 1)


def test_injected_failures_are_retryable_and_then_the_decision_goes_through(fake):
    request_id = new_application_request(fake)
    client = client_for(fake)
    fake.fail_next(2, 503, retry_after=30)
    for _ in range(2):
        with pytest.raises(EpmRetryable) as raised:
            client.send_application_decision(application_body(request_id), "key-1")
        assert (raised.value.status, raised.value.retry_after) == (503, 30)
    client.send_application_decision(application_body(request_id), "key-1")
    assert fake.applied_count == 1


def test_an_injected_permanent_failure_is_rejected(fake):
    fake.fail_next(1, 400)
    with pytest.raises(EpmRejected, match="Injected failure"):
        client_for(fake).send_application_decision(application_body(new_application_request(fake)), "key-1")
    assert fake.applied_count == 0


def test_revoked_tokens_are_replaced_by_one_refresh(fake):
    client = client_for(fake)
    client.send_application_decision(application_body(new_application_request(fake)), "key-1")
    fake.revoke_tokens()
    client.send_application_decision(application_body(new_application_request(fake)), "key-2")
    assert (fake.token_requests, fake.applied_count) == (2, 2)


def test_a_rotated_secret_fails_until_the_new_one_is_configured(fake):
    client_for(fake).send_application_decision(application_body(new_application_request(fake)), "key-1")
    fake.rotate_secret("regenerated-secret")
    request_id = new_application_request(fake)
    with pytest.raises(EpmAuthFailed, match="client ID and client secret"):
        client_for(fake).send_application_decision(application_body(request_id), "key-2")
    client_for(fake, secret="regenerated-secret").send_application_decision(application_body(request_id), "key-2")
    assert fake.decision_for(request_id) is not None


def test_concurrent_clients_share_one_token_fetch(fake):
    request_ids = [new_application_request(fake) for _ in range(12)]
    before = tokens.token_fetch_count()

    def decide(request_id):
        return client_for(fake).send_application_decision(application_body(request_id), f"key-{request_id}")

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(decide, request_ids))
    assert fake.token_requests == 1
    assert tokens.token_fetch_count() - before == 1
    assert fake.applied_count == 12


def test_an_admin_decision_reaches_the_admin_route(fake):
    request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
    client_for(fake).send_admin_decision(admin_body(request_id, "Denied", None), "key-1")
    assert fake.calls[0].kind == contract.KIND_ADMIN
    assert fake.decision_for(request_id)["decision"] == "Denied"


def test_a_body_breaking_the_contract_is_rejected(fake):
    body = dict(application_body(new_application_request(fake)), decisionTime="2026-11-20T14:20:44Z")
    with pytest.raises(EpmRejected, match="decisionTime must be yyyy-MM-dd HH:mm:ss"):
        client_for(fake).send_application_decision(body, "key-1")


def test_a_strict_fake_refuses_requests_it_never_announced():
    with FakeEpm(strict=True) as strict:
        with pytest.raises(EpmRejected) as raised:
            client_for(strict).send_application_decision(application_body("never-announced"), "key-1")
    assert raised.value.status == 400
    assert "itsmRequestId" in raised.value.body


def test_a_stopped_fake_refuses_connections():
    with FakeEpm() as stopped:
        client = client_for(stopped)
    with pytest.raises(EpmUnreachable, match="Connection refused by 127.0.0.1"):
        client.test_connection()


# --- Reads ------------------------------------------------------------------------------------


def test_reads_page_through_the_requests_the_fake_knows(fake):
    application_ids = [new_application_request(fake) for _ in range(3)]
    admin_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
    client = client_for(fake)
    page = client.list_requests(contract.KIND_APPLICATION, page_size=2, page_number=2)
    assert (page["pageCount"], page["totalRecordCount"]) == (2, 3)
    assert [record["id"] for record in page["data"]] == application_ids[2:]
    assert client.get_request(contract.KIND_ADMIN, admin_id)["requestInfo"]["requestId"] == admin_id
    assert client.get_request(contract.KIND_ADMIN, application_ids[0]) is None  # a 404: not found


def test_test_connection_against_the_fake_says_connection_ok(fake):
    assert client_for(fake).test_connection() == "Connection OK"


def test_reset_forgets_requests_calls_and_tokens(fake):
    client_for(fake).send_application_decision(application_body(new_application_request(fake)), "key-1")
    fake.reset()
    assert (fake.token_requests, fake.received_count, fake.requests) == (0, 0, {})


# --- Webhooks to the broker ---------------------------------------------------------------------


def webhook_fake(receiver, **options):
    return FakeEpm(broker_url=receiver.url, webhook_user="epm", webhook_password="hook-pass", **options)


def test_fire_application_request_posts_a_created_event_with_basic_auth(webhook_receiver):
    with webhook_fake(webhook_receiver) as fake:
        request_id = fake.fire_application_request(user="CORP\\dsilva", hostName="LT-OPO-0007")
    [record] = webhook_receiver.received
    assert record["path"] == contract.WEBHOOK_PATH
    assert record["headers"]["Authorization"] == "Basic " + base64.b64encode(b"epm:hook-pass").decode()
    assert record["headers"]["Content-Type"] == "application/json"
    event = record["json"]
    assert (event["EventType"], event["RequestId"]) == (contract.URM_TICKET_CREATED.name, request_id)
    assert (event["requestInfo"]["user"], event["requestInfo"]["hostName"]) == ("CORP\\dsilva", "LT-OPO-0007")
    assert set(event["requestInfo"]) == set(contract.URM_REQUEST_INFO_KEYS)
    assert all(isinstance(value, str) for value in event["requestInfo"].values())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z", event["Timestamp"])


def test_fire_admin_request_posts_a_flat_created_event(webhook_receiver):
    with webhook_fake(webhook_receiver) as fake:
        first = fake.fire_admin_request(UserName="CORP\\akowalski", DurationRequested="3600")
        second = fake.fire_admin_request()
    events = webhook_receiver.events()
    assert [event["RequestId"] for event in events] == [first, second]
    assert events[0]["EventType"] == contract.ADMIN_TICKET_CREATED.name
    assert (events[0]["UserName"], events[0]["DurationRequested"]) == ("CORP\\akowalski", "3600")
    assert events[0]["TicketNumber"] != events[1]["TicketNumber"]


def test_fire_raises_when_the_broker_refuses_the_webhook(webhook_receiver):
    webhook_receiver.status = 401
    with webhook_fake(webhook_receiver) as fake:
        with pytest.raises(FakeEpmError, match="HTTP 401"):
            fake.fire_application_request()


def test_auto_finalize_sends_the_application_update_after_acknowledging(webhook_receiver):
    with webhook_fake(webhook_receiver, auto_finalize=True) as fake:
        request_id = fake.fire_application_request()
        client_for(fake).send_application_decision(application_body(request_id), "key-1")
        assert fake.wait_for_finalizations(5)
    created, update = webhook_receiver.events()
    assert (update["EventType"], update["RequestId"]) == (contract.URM_DECISION_UPDATE.name, request_id)
    assert (update["TicketNumber"], update["TenantId"]) == (created["TicketNumber"], created["TenantId"])
    assert update["requestInfo"] == {"Decision": "Approved", "DecisionTime": "2026-11-20T14:20:44Z",
                                     "DecisionPerformedByUser": "jchen", "Duration": "3600"}


def test_auto_finalize_sends_a_flat_admin_update_with_its_time_window(webhook_receiver):
    with webhook_fake(webhook_receiver, auto_finalize=True) as fake:
        request_id = fake.fire_admin_request(DurationRequested="1800")
        client_for(fake).send_admin_decision(admin_body(request_id, duration="1800"), "key-1")
        assert fake.wait_for_finalizations(5)
    update = webhook_receiver.events()[1]
    assert update["EventType"] == contract.ADMIN_TICKET_UPDATED.name
    assert (update["Decision"], update["Duration"], update["DurationRequested"]) == ("Approved", "1800", "1800")
    start = datetime.fromisoformat(update["StartTime"])
    assert (datetime.fromisoformat(update["EndTime"]) - start).total_seconds() == 1800


def test_the_decision_answer_does_not_wait_for_the_update_webhook(webhook_receiver):
    with webhook_fake(webhook_receiver, auto_finalize=True) as fake:
        request_id = fake.fire_application_request()
        webhook_receiver.delay = 1.5
        started = time.monotonic()
        client_for(fake).send_application_decision(application_body(request_id), "key-1")
        assert time.monotonic() - started < 1.0
        assert fake.wait_for_finalizations(5)
    assert len(webhook_receiver.received) == 2


def test_the_control_route_fires_a_request(webhook_receiver):
    with webhook_fake(webhook_receiver) as fake:
        response = requests.post(f"{fake.url}{CONTROL_PREFIX}/application-requests", json={"user": "CORP\\x"},
                                 timeout=5)
        state = requests.get(f"{fake.url}{CONTROL_PREFIX}/state", timeout=5).json()
    assert response.status_code == 201
    assert webhook_receiver.events()[0]["RequestId"] == response.json()["requestId"]
    assert state["requests"] == 1


def test_the_fake_runs_on_its_own_and_keeps_serving_when_the_broker_is_not_up_yet(tmp_path):
    port, broker_port = free_port(), free_port()
    errors = tmp_path / "stderr"
    # faulthandler: a SIGABRT makes the process print every thread's stack, should it not stop.
    with errors.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "app.epm.fake", "--port", str(port),
                                    "--broker-url", f"http://127.0.0.1:{broker_port}", "--fire-application", "1"],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert f"http://127.0.0.1:{port}" in process.stdout.readline()
        process.stdout.readline()  # how to fire requests by hand
        assert "could not fire a request" in process.stdout.readline()
        assert EpmClient(f"http://127.0.0.1:{port}", DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
                         timeout=5).test_connection() == "Connection OK"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            # Never leave it running into the next test.
            process.send_signal(signal.SIGABRT)
            process.wait(10)
            pytest.fail("the fake did not stop within 10 s of SIGINT; its stderr and threads:\n"
                        + errors.read_text()[-8000:])
        finally:
            process.stdout.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_the_fake_stops_on_its_signal_though_its_parent_ignores_sigint(stop_signal):
    """Started from a process ignoring SIGINT (a script's background job; pytest-xdist's workers, where the
    test above once waited 10 s on a fake that never saw its Ctrl-C), the fake still stops on either signal."""
    process = subprocess.Popen([sys.executable, "-m", "app.epm.fake", "--port", str(free_port())], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               preexec_fn=ignoring_sigint)
    try:
        assert "Fake EPM listening" in process.stdout.readline()
        process.stdout.readline()
        process.send_signal(stop_signal)
        assert process.wait(10) == 0
        assert process.stdout.read().strip() == "stopping"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
