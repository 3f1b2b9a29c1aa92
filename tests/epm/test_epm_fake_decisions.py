"""Decision calls against the fake EPM over real HTTP: ASP.NET's ValidationProblemDetails when strict, today's
lenient answers otherwise, PascalCase Admin Access bodies (5.9), and the token endpoint's refusals."""
import pytest
import requests

from app import contract
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEpm
from tests.epm.fake_http import V3_ADMIN, V3_APPLICATION, Api

APPLICATION_BODY = {
    "status": "2000", "decision": "Approved", "decisionPerformedByUser": "alice", "duration": "Once",
    "decisionTime": "2026-11-22 05:03:10", "message": "ok for the driver",
    "systemId": "2f9a8c7d6e5b4a3921f0e1d2c3b4a596", "ticketId": "INC0010001",
    "ticketUrl": "https://broker.example/tickets/INC0010001"}
ADMIN_BODY = {
    "decision": "Approved", "duration": "1800", "decisionPerformedByUser": "alice", "message": "maintenance window",
    "systemId": "2f9a8c7d6e5b4a3921f0e1d2c3b4a597", "ticketId": "INC0010002",
    "ticketUrl": "https://broker.example/tickets/INC0010002"}
PASCAL_ADMIN_BODY = {
    "Decision": "Approved", "Duration": "1800", "DecisionPerformedByUser": "alice", "Message": "maintenance window",
    "SystemId": "2f9a8c7d6e5b4a3921f0e1d2c3b4a597", "TicketId": "INC0010002",
    "TicketUrl": "https://broker.example/tickets/INC0010002"}


@pytest.fixture
def lenient():
    with FakeEpm() as running:
        yield running


@pytest.fixture
def strict():
    with FakeEpm(strict=True) as running:
        yield running


def application_body(fake, **changes):
    return {**APPLICATION_BODY, "itsmRequestId": fake.add_request(contract.KIND_APPLICATION)["RequestId"],
            **changes}


def admin_body(fake, **changes):
    return {**ADMIN_BODY, "requestId": fake.add_request(contract.KIND_ADMIN)["RequestId"], **changes}


def assert_validation_problem(answer, field):
    assert (answer.status_code, answer.headers["Content-Type"]) == (400, "application/problem+json")
    problem = answer.json()
    assert set(problem) == {"type", "title", "status", "errors", "traceId"}
    assert (problem["title"], problem["status"]) == ("One or more validation errors occurred.", 400)
    assert problem["type"].startswith("https://tools.ietf.org/html/rfc")
    assert list(problem["errors"]) == [field]
    assert all(isinstance(message, str) and message for message in problem["errors"][field])
    return problem["errors"][field]


# --- Strict: ASP.NET's refusals ----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["decisionPerformedByUser", "ticketUrl", "decisionTime", "status"])
def test_a_strict_fake_names_a_missing_application_field(strict, field):
    body = application_body(strict)
    del body[field]
    answer = Api(strict).post(contract.EPM_APPLICATION_DECISION_PATH, body)
    assert assert_validation_problem(answer, field) == [f"The {field} field is required."]
    assert strict.applied_count == 0


def test_a_strict_fake_names_a_missing_admin_request_id(strict):
    body = dict(ADMIN_BODY)
    answer = Api(strict).post(contract.EPM_ADMIN_DECISION_PATH, body)
    assert_validation_problem(answer, "requestId")


def test_a_strict_fake_names_a_malformed_field(strict):
    answer = Api(strict).post(contract.EPM_APPLICATION_DECISION_PATH,
                              application_body(strict, decisionTime="2026-11-22T05:03:10Z"))
    assert assert_validation_problem(answer, "decisionTime") == ["decisionTime must be yyyy-MM-dd HH:mm:ss"]


def test_a_strict_fake_refuses_an_unknown_application_request(strict):
    body = {**APPLICATION_BODY, "itsmRequestId": "6f1c2a9e-3b7d-4e21-9c55-0a8b7e4d1f20"}
    answer = Api(strict).post(contract.EPM_APPLICATION_DECISION_PATH, body)
    assert_validation_problem(answer, "itsmRequestId")
    assert (strict.applied_count, strict.requests) == (0, {})


def test_a_strict_fake_refuses_an_unknown_admin_request(strict):
    body = {**ADMIN_BODY, "requestId": "26c08294-9d58-4927-99a4-477186a125f4"}
    answer = Api(strict).post(contract.EPM_ADMIN_DECISION_PATH, body)
    assert_validation_problem(answer, "requestId")
    assert (strict.applied_count, strict.requests) == (0, {})


def test_a_strict_fake_answers_an_applied_decision_with_an_empty_200(strict):
    answer = Api(strict).post(contract.EPM_APPLICATION_DECISION_PATH, application_body(strict))
    assert (answer.status_code, answer.content) == (200, b"")
    assert strict.applied_count == 1


# --- Lenient: today's answers ------------------------------------------------------------------------


def test_a_lenient_fake_refuses_a_missing_field_with_a_message(lenient):
    body = application_body(lenient)
    del body["ticketId"]
    answer = Api(lenient).post(contract.EPM_APPLICATION_DECISION_PATH, body)
    assert (answer.status_code, answer.json()) == (400, {"message": "The ticketId field is required."})


def test_a_lenient_fake_registers_an_unknown_request_as_if_announced(lenient):
    body = {**APPLICATION_BODY, "itsmRequestId": "6f1c2a9e-3b7d-4e21-9c55-0a8b7e4d1f20"}
    api = Api(lenient)
    assert api.post(contract.EPM_APPLICATION_DECISION_PATH, body).json() == {}
    record = api.get(f"{V3_APPLICATION}/6f1c2a9e-3b7d-4e21-9c55-0a8b7e4d1f20").json()
    assert record["accessDecision"]["status"] == "Approved"


# --- Case of the Admin Access body ------------------------------------------------------------------


@pytest.mark.parametrize("strictness", [False, True])
def test_a_pascal_case_admin_approval_is_applied(strictness):
    with FakeEpm(strict=strictness) as fake:
        request_id = fake.add_request(contract.KIND_ADMIN)["RequestId"]
        body = {**PASCAL_ADMIN_BODY, "RequestId": request_id}
        api = Api(fake)
        assert api.post(contract.EPM_ADMIN_DECISION_PATH, body).status_code == 200
        record = api.get(f"{V3_ADMIN}/{request_id}").json()
    assert fake.decision_for(request_id) == {**ADMIN_BODY, "requestId": request_id}
    assert fake.calls[0].body == body
    assert (record["accessDecision"]["status"], record["accessDecision"]["duration"]) == ("Approved", "1800")


def test_a_pascal_case_admin_denial_without_duration_is_applied(lenient):
    request_id = lenient.add_request(contract.KIND_ADMIN)["RequestId"]
    body = {key: value for key, value in PASCAL_ADMIN_BODY.items() if key != "Duration"}
    body.update(RequestId=request_id, Decision="Denied")
    assert Api(lenient).post(contract.EPM_ADMIN_DECISION_PATH, body).status_code == 200
    assert lenient.decision_for(request_id)["decision"] == "Denied"


def test_a_pascal_case_admin_body_missing_a_field_is_named_in_camel_case(strict):
    request_id = strict.add_request(contract.KIND_ADMIN)["RequestId"]
    body = {key: value for key, value in PASCAL_ADMIN_BODY.items() if key != "DecisionPerformedByUser"}
    answer = Api(strict).post(contract.EPM_ADMIN_DECISION_PATH, {**body, "RequestId": request_id})
    assert_validation_problem(answer, "decisionPerformedByUser")


# --- Token endpoint ------------------------------------------------------------------------------------


def test_a_bad_secret_is_an_invalid_client(lenient):
    answer = requests.post(f"{lenient.url}{contract.EPM_TOKEN_PATH}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "client_secret": "wrong"})
    assert (answer.status_code, answer.json()) == (401, {"error": "invalid_client"})


def test_a_token_answer_has_the_documented_keys(lenient):
    answer = requests.post(f"{lenient.url}{contract.EPM_TOKEN_PATH}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET})
    token = answer.json()
    assert set(token) == {"access_token", "token_type", "expires_in", "scope"}
    assert (token["token_type"], token["expires_in"], token["scope"]) == ("Bearer", 3600, "urn:management:api")
