"""The fake EPM's reads over real HTTP: section 5's nested records, strict and lenient key sets, single reads
as objects or one-element arrays, and the list envelope with its paging values."""
from datetime import datetime

import pytest
import requests

from app import contract
from app.epm.client import EpmClient
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEpm
from app.epm.payloads import admin_decision_body, application_decision_body
from tests.epm.fake_http import V2_ADMIN, V2_APPLICATION, V3_ADMIN, V3_APPLICATION, Api

LENIENT_APPLICATION_KEYS = {
    None: {"id", "requestInfo", "serviceTicket", "accessDecision"},
    "requestInfo": {"requestId", "user", "created", "hostName", "reason", "productName", "publisher",
                    "applicationType"},
    "serviceTicket": {"ticketId", "systemId", "url"},
    "accessDecision": {"status", "decision", "decisionPerformedByUser", "decisionTime", "duration"},
}
STRICT_APPLICATION_KEYS = {
    None: {"id", "requestInfo", "serviceTicket", "accessDecision"},
    "requestInfo": {"user", "created"},
    "serviceTicket": {"ticketId", "systemId", "url"},
    "accessDecision": {"status"},
}
LENIENT_ADMIN_KEYS = {
    None: {"requestInfo", "accessDecision"},
    "requestInfo": {"requestId", "ticketId", "userName", "userId", "computerId", "reason", "durationRequested"},
    "accessDecision": {"status", "decision", "decisionPerformedByUser", "duration", "startTime", "endTime"},
}
STRICT_ADMIN_KEYS = {
    None: {"requestInfo", "accessDecision"},
    "requestInfo": {"requestId", "ticketId", "userName", "reason", "durationRequested"},
    "accessDecision": {"status", "duration", "startTime", "endTime"},
}


def key_sets(record):
    return {None: set(record), **{name: set(value) for name, value in record.items() if isinstance(value, dict)}}


@pytest.fixture
def lenient():
    with FakeEpm() as running:
        yield running


@pytest.fixture
def strict():
    with FakeEpm(strict=True) as running:
        yield running


def decide_application(fake, request_id):
    body = application_decision_body(
        decision="Approved", performed_by="alice", duration="Once", request_id=request_id,
        decision_time=datetime(2026, 11, 22, 5, 3, 10), reason="ok for the driver",
        sys_id="2f9a8c7d6e5b4a3921f0e1d2c3b4a596", ticket_number="INC0010001",
        ticket_url="https://broker.example/tickets/INC0010001")
    EpmClient(fake.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=5).send_application_decision(body, "k-a")


def decide_admin(fake, request_id, duration="1800"):
    body = admin_decision_body(decision="Approved", performed_by="alice", duration=duration, request_id=request_id,
                               reason="maintenance window", sys_id="2f9a8c7d6e5b4a3921f0e1d2c3b4a597",
                               ticket_number="INC0010002", ticket_url="https://broker.example/tickets/INC0010002")
    EpmClient(fake.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=5).send_admin_decision(body, "k-b")


# --- Application Access ------------------------------------------------------------------------


def test_a_decided_application_record_is_nested_as_in_the_example(lenient):
    created = lenient.add_request(contract.KIND_APPLICATION, user="ACME\\jdoe", hostName="WS-0042")
    request_id = created["RequestId"]
    decide_application(lenient, request_id)
    record = Api(lenient).get(f"{V3_APPLICATION}/{request_id}").json()
    assert key_sets(record) == LENIENT_APPLICATION_KEYS
    assert record["id"] == record["requestInfo"]["requestId"] == request_id
    assert (record["requestInfo"]["user"], record["requestInfo"]["hostName"]) == ("ACME\\jdoe", "WS-0042")
    assert record["requestInfo"]["created"] == created["Timestamp"]
    assert record["serviceTicket"] == {"ticketId": "INC0010001", "systemId": "2f9a8c7d6e5b4a3921f0e1d2c3b4a596",
                                       "url": "https://broker.example/tickets/INC0010001"}
    assert record["accessDecision"] == {"status": "Approved", "decision": "Approved",
                                        "decisionPerformedByUser": "alice", "decisionTime": "2026-11-22 05:03:10",
                                        "duration": "Once"}


def test_a_pending_application_record_has_no_ticket_and_no_decision_yet(lenient):
    request_id = lenient.add_request(contract.KIND_APPLICATION)["RequestId"]
    record = Api(lenient).get(f"{V3_APPLICATION}/{request_id}").json()
    assert record["serviceTicket"] == {"ticketId": None, "systemId": None, "url": None}
    assert record["accessDecision"] == {"status": "Pending", "decision": None, "decisionPerformedByUser": None,
                                        "decisionTime": None, "duration": None}


def test_a_strict_application_record_serves_only_confirmed_keys_and_its_id(strict):
    request_id = strict.add_request(contract.KIND_APPLICATION)["RequestId"]
    decide_application(strict, request_id)
    record = Api(strict).get(f"{V3_APPLICATION}/{request_id}").json()
    assert key_sets(record) == STRICT_APPLICATION_KEYS
    assert record["accessDecision"] == {"status": "Approved"}


def test_the_v2_application_single_read_is_an_object_too(lenient):
    request_id = lenient.add_request(contract.KIND_APPLICATION)["RequestId"]
    api = Api(lenient)
    assert api.get(f"{V2_APPLICATION}/{request_id}").json() == api.get(f"{V3_APPLICATION}/{request_id}").json()


def test_status_text_is_a_constructor_option():
    with FakeEpm(status_text={"Approved": "2000", "Denied": "2001"}) as fake:
        approved = fake.add_request(contract.KIND_APPLICATION)["RequestId"]
        pending = fake.add_request(contract.KIND_APPLICATION)["RequestId"]
        decide_application(fake, approved)
        api = Api(fake)
        assert api.get(f"{V3_APPLICATION}/{approved}").json()["accessDecision"]["status"] == "2000"
        assert api.get(f"{V3_APPLICATION}/{pending}").json()["accessDecision"]["status"] == "Pending"


# --- Admin Access --------------------------------------------------------------------------------


def test_an_approved_admin_record_is_nested_with_its_session_window(lenient):
    created = lenient.add_request(contract.KIND_ADMIN, UserName="ACME\\jdoe", DurationRequested="1800")
    request_id = created["RequestId"]
    decide_admin(lenient, request_id)
    record = Api(lenient).get(f"{V3_ADMIN}/{request_id}").json()
    assert key_sets(record) == LENIENT_ADMIN_KEYS
    assert record["requestInfo"] == {
        "requestId": request_id, "ticketId": created["TicketNumber"], "userName": "ACME\\jdoe",
        "userId": created["UserId"], "computerId": created["ComputerId"], "reason": created["Reason"],
        "durationRequested": "1800"}
    decision = record["accessDecision"]
    assert (decision["status"], decision["decision"], decision["decisionPerformedByUser"], decision["duration"]) == (
        "Approved", "Approved", "alice", "1800")
    start, end = (datetime.fromisoformat(decision[key]) for key in ("startTime", "endTime"))
    assert (end - start).total_seconds() == 1800


def test_a_strict_admin_record_serves_only_confirmed_keys(strict):
    request_id = strict.add_request(contract.KIND_ADMIN)["RequestId"]
    record = Api(strict).get(f"{V3_ADMIN}/{request_id}").json()
    assert key_sets(record) == STRICT_ADMIN_KEYS
    assert record["accessDecision"] == {"status": "Pending", "duration": None, "startTime": None, "endTime": None}


def test_the_v2_admin_single_read_is_a_one_element_array(lenient):
    request_id = lenient.add_request(contract.KIND_ADMIN)["RequestId"]
    api = Api(lenient)
    answer = api.get(f"{V2_ADMIN}/{request_id}").json()
    assert isinstance(answer, list) and len(answer) == 1
    assert answer[0] == api.get(f"{V3_ADMIN}/{request_id}").json()


def test_the_v3_admin_single_read_can_answer_an_array_too():
    with FakeEpm(admin_single_as_array=True) as fake:
        request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
        answer = Api(fake).get(f"{V3_ADMIN}/{request_id}").json()
    assert [record["requestInfo"]["requestId"] for record in answer] == [request_id]


@pytest.mark.parametrize("path", [V3_APPLICATION, V2_APPLICATION, V3_ADMIN, V2_ADMIN])
def test_an_unknown_id_is_a_404_json_answer(lenient, path):
    answer = Api(lenient).get(f"{path}/no-such-request")
    assert answer.status_code == 404
    assert answer.json() == {"message": "Request no-such-request not found"}


def test_a_strict_unknown_id_is_a_problem_details_404(strict):
    answer = Api(strict).get(f"{V2_ADMIN}/no-such-request")
    assert (answer.status_code, answer.headers["Content-Type"]) == (404, "application/problem+json")
    assert (answer.json()["status"], answer.json()["title"]) == (404, "Not Found")


def test_a_record_of_the_other_kind_is_not_found(lenient):
    request_id = lenient.add_request(contract.KIND_ADMIN)["RequestId"]
    assert Api(lenient).get(f"{V3_APPLICATION}/{request_id}").status_code == 404


# --- Lists ---------------------------------------------------------------------------------------


def test_a_list_page_carries_the_envelope_and_its_paging_values(lenient):
    request_ids = [lenient.add_request(contract.KIND_ADMIN)["RequestId"] for _ in range(5)]
    lenient.add_request(contract.KIND_APPLICATION)
    api = Api(lenient)
    pages = [api.get(V3_ADMIN, **{"Pagination.PageSize": 2, "Pagination.PageNumber": number}).json()
             for number in (1, 2, 3, 4)]
    assert [set(page) for page in pages] == [{"pageNumber", "pageSize", "totalRecordCount", "pageCount", "data"}] * 4
    assert [(page["pageNumber"], page["pageSize"], page["pageCount"], page["totalRecordCount"]) for page in pages] == [
        (1, 2, 3, 5), (2, 2, 3, 5), (3, 2, 3, 5), (4, 2, 3, 5)]
    assert [[record["requestInfo"]["requestId"] for record in page["data"]] for page in pages] == [
        request_ids[0:2], request_ids[2:4], request_ids[4:], []]
    assert all(key_sets(record) == LENIENT_ADMIN_KEYS for page in pages for record in page["data"])


def test_a_strict_list_page_serves_only_confirmed_envelope_and_record_keys(strict):
    strict.add_request(contract.KIND_APPLICATION)
    page = Api(strict).get(V3_APPLICATION, **{"Pagination.PageSize": 200, "Pagination.PageNumber": 1}).json()
    assert set(page) == {"totalRecordCount", "pageCount", "data"}
    assert (page["totalRecordCount"], page["pageCount"]) == (1, 1)
    assert key_sets(page["data"][0]) == STRICT_APPLICATION_KEYS


def test_an_empty_list_has_no_pages(lenient):
    page = Api(lenient).get(V3_ADMIN).json()
    assert (page["data"], page["pageCount"], page["totalRecordCount"], page["pageSize"]) == ([], 0, 0, 200)


@pytest.mark.parametrize("params", [{"Pagination.PageSize": 0}, {"Pagination.PageSize": 201},
                                    {"Pagination.PageNumber": 0}, {"Pagination.PageSize": "many"}])
def test_paging_values_out_of_range_are_refused(lenient, params):
    assert Api(lenient).get(V3_ADMIN, **params).status_code == 400


def test_the_largest_page_size_is_accepted(lenient):
    assert Api(lenient).get(V3_ADMIN, **{"Pagination.PageSize": 200}).status_code == 200


def test_reads_need_a_token(lenient):
    assert requests.get(f"{lenient.url}{V3_ADMIN}", timeout=5).status_code == 401
