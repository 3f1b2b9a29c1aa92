"""The webhook front door: authentication, bad input, and deliveries becoming tickets."""
import json
import re
import threading
from datetime import datetime

import pytest

from app import contract
from app.models import (AdminTicket, ApplicationAccessTicket, Configuration, Decision, IncomingRequest, JIT_MODELS,
                        Task, WorkNote, utcnow)
from tests import factories
from tests.conftest import WEBHOOK, basic_auth


def incoming_rows():
    return list(IncomingRequest.select().order_by(IncomingRequest.id))


# --- Authentication ----------------------------------------------------------------


def test_delivery_without_credentials_is_refused_and_not_stored(client, api_account):
    response = client.post(WEBHOOK, json=factories.application_request())
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert incoming_rows() == []


def test_delivery_with_wrong_password_is_refused(client, api_account):
    response = client.post(WEBHOOK, json=factories.application_request(),
                           headers=basic_auth("epm", "wrong-password-here"))
    assert response.status_code == 401
    assert Task.select().count() == 0


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client, api_account):
    wrong_password = client.post(WEBHOOK, json={}, headers=basic_auth("epm", "nope-nope-nope"))
    unknown_user = client.post(WEBHOOK, json={}, headers=basic_auth("nobody", "nope-nope-nope"))
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json == unknown_user.json


@pytest.mark.parametrize("role", ["user", "admin"])
def test_only_the_api_role_may_deliver(client, role):
    factories.account("person", role)
    response = client.post(WEBHOOK, json=factories.application_request(),
                           headers=basic_auth("person", factories.PASSWORD))
    assert response.status_code == 403
    assert Task.select().count() == 0


def test_deactivated_api_account_cannot_deliver(client):
    factories.account("epm", "api", active=False)
    response = client.post(WEBHOOK, json=factories.application_request(),
                           headers=basic_auth("epm", factories.PASSWORD))
    assert response.status_code == 401


def test_password_is_verified_once_then_cached(app, deliver):
    for _ in range(5):
        assert deliver(factories.application_request()).status_code == 200
    assert app.extensions["verification_cache"].verifications == 1


def test_threads_missing_the_cache_at_once_share_one_password_check(app, api_account):
    # A gthread worker's first deliveries arrive together; each paying the ~100 ms
    # check would stall all of them behind one another.
    cache = app.extensions["verification_cache"]
    start = threading.Barrier(6)
    answers = []

    def verify(password):
        start.wait()
        answers.append(cache.verify(api_account, "epm", password))

    threads = [threading.Thread(target=verify, args=(factories.PASSWORD,)) for _ in range(5)]
    threads.append(threading.Thread(target=verify, args=("a-wrong-password",)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [False] + [True] * 5
    assert cache.verifications == 2  # the right password once, the wrong one on its own


def test_changed_password_is_not_accepted_from_the_cache(app, client, api_account, deliver):
    from app.auth.accounts import set_password

    assert deliver(factories.application_request()).status_code == 200
    set_password(api_account, "a-brand-new-password")
    response = client.post(WEBHOOK, json=factories.application_request(),
                           headers=basic_auth("epm", factories.PASSWORD))
    assert response.status_code == 401


# --- Bad input is stored with its reason -------------------------------------------


@pytest.mark.parametrize("content_type", [
    "text/plain", "text/json", None, "application/json; charset=utf-8", "application/x-www-form-urlencoded"])
def test_a_json_object_is_a_delivery_whatever_its_content_type(client, api_auth, content_type):
    # EPM's administrator types the webhook's Content-Type (contract 5.5).
    body = factories.application_request()
    headers = {**api_auth, **({"Content-Type": content_type} if content_type else {})}
    response = client.post(WEBHOOK, data=json.dumps(body).encode(), headers=headers)
    assert response.status_code == 200
    assert response.json["result"]["status"] == contract.INCOMING_PROCESSED
    assert Task.get(Task.number == response.json["result"]["ticket"]).requester == "CORP\\mrivera"
    [row] = incoming_rows()
    assert (row.status, row.content_type) == (contract.INCOMING_PROCESSED, content_type)


@pytest.mark.parametrize("body, reason", [
    (b"[1,2]", "the body is JSON but an array, not an object"),
    (b"not json", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
    (b'"a JSON string"', "the body is JSON but a string, not an object"),
    (b"23.5", "the body is JSON but a number, not an object"),
    (b"", "the body is not JSON: Expecting value: line 1 column 1 (char 0)"),
])
@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
def test_a_body_that_is_not_a_json_object_is_400_and_stored_as_error(deliver, body, reason, content_type):
    response = deliver(body, content_type=content_type)
    assert response.status_code == 400
    assert response.json["error"] == {"message": "The body is not a JSON object", "detail": reason}
    [row] = incoming_rows()
    assert (row.status, row.error) == (contract.INCOMING_ERROR, f"The body is not a JSON object: {reason}")
    assert row.body_text == body.decode()
    assert Task.select().count() == 0


def test_malformed_json_is_400_and_the_raw_body_is_kept(deliver):
    response = deliver(b'{"EventType": "URM_Native_Ticket_Created", ')
    assert response.status_code == 400
    assert response.json["error"]["message"] == "The body is not a JSON object"
    [row] = incoming_rows()
    assert row.status == contract.INCOMING_ERROR
    assert row.body_text == '{"EventType": "URM_Native_Ticket_Created", '


TOO_DEEP = "the body nests its arrays and objects more than 64 levels deep"


def nested_body(request_id, depth, **fields):
    """A delivery whose object holds arrays nested so that the whole body is `depth` levels deep."""
    raw = json.dumps(factories.admin_request(request_id=request_id, **fields))
    return (raw[:-1] + ', "extra": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}").encode()


@pytest.mark.parametrize("reason", ["cafe", "caf\u00e9"], ids=["plain", "escaped"])
@pytest.mark.parametrize("depth", [65, 600, 100_000])
def test_a_body_nested_too_deeply_is_400_and_stored_as_error_whatever_its_escapes(deliver, reason, depth):
    # With a \u escape (.NET writes "café" as "caf\u00e9") the parsed body is walked for what no column stores;
    # without one it is not: the limit holds either way.
    raw = nested_body("deep-1", depth, Reason=reason)
    assert (b"\\u00e9" in raw) == (reason != "cafe")
    response = deliver(raw)
    assert response.status_code == 400
    assert response.json["error"] == {"message": "The body is not a JSON object", "detail": TOO_DEEP}
    [row] = incoming_rows()
    assert (row.status, bytes(row.raw_body)) == (contract.INCOMING_ERROR, raw)
    assert Task.select().count() == 0


def test_a_body_nested_64_levels_deep_is_accepted(deliver):
    response = deliver(nested_body("deep-64", 64, Reason="caf\u00e9"))
    assert response.status_code == 200 and Task.select().count() == 1


def test_a_content_type_over_its_column_still_stores_the_delivery_and_keeps_it_whole(deliver):
    # EPM's administrator types the webhook's Content-Type (contract 5.5): its column takes 255 characters.
    content_type = "application/json; charset=utf-8; profile=" + "x" * 240
    response = deliver(factories.admin_request(request_id="ct-1"), content_type=content_type)
    assert response.status_code == 200
    refused = deliver(b"not json", content_type=content_type)
    assert refused.status_code == 400
    made, rejected = incoming_rows()
    assert (made.status, rejected.status) == (contract.INCOMING_PROCESSED, contract.INCOMING_ERROR)
    assert AdminTicket.get(AdminTicket.request_id == "ct-1").task.number == response.json["result"]["ticket"]
    assert made.content_type == rejected.content_type == content_type[:255]
    assert made.headers["Content-Type"] == rejected.headers["Content-Type"] == content_type


def test_body_over_one_mebibyte_is_413_and_stored_without_body(deliver):
    body = factories.application_request(cmdArgs="x" * (1024 * 1024))
    response = deliver(body)
    assert response.status_code == 413
    [row] = incoming_rows()
    assert row.status == contract.INCOMING_ERROR
    assert row.raw_body is None
    assert "limit" in row.error


def test_missing_event_type_is_a_field_error(deliver):
    body = factories.application_request()
    del body["EventType"]
    response = deliver(body)
    assert response.status_code == 400
    assert "EventType" in response.json["fields"]
    assert incoming_rows()[0].status == contract.INCOMING_ERROR


def test_unknown_event_type_is_a_field_error_naming_the_known_ones(deliver):
    response = deliver({**factories.application_request(), "EventType": "SOMETHING_ELSE"})
    assert response.status_code == 400
    assert "URM_Native_Ticket_Created" in response.json["fields"]["EventType"][0]
    [row] = incoming_rows()
    assert row.event_type == "SOMETHING_ELSE"
    assert "Unknown event type" in row.error


@pytest.mark.parametrize("request_id", [..., None, "", "%%RequestId%%", "%%REQUESTID%%"])
@pytest.mark.parametrize("build", [factories.application_request, factories.admin_decision])
def test_missing_or_blank_request_id_is_a_field_error(deliver, request_id, build):
    body = build("placeholder")
    if request_id is ...:
        del body["RequestId"]
    else:
        body["RequestId"] = request_id
    response = deliver(body)
    assert response.status_code == 400
    expected = "Missing data for required field." if request_id is ... else "RequestId must not be empty."
    assert response.json["fields"] == {"RequestId": [expected]}
    assert Task.select().count() == 0
    assert incoming_rows()[0].status == contract.INCOMING_ERROR


def test_an_object_where_text_belongs_is_a_field_error(deliver):
    response = deliver(factories.admin_request(UserName={"nested": ["junk"]}))
    assert response.status_code == 400
    assert response.json["fields"] == {"UserName": ["Expected a text value."]}
    assert Task.select().count() == 0


def test_request_info_that_is_not_an_object_is_a_field_error(deliver):
    response = deliver({**factories.application_request(), "requestInfo": "oops"})
    assert response.status_code == 400
    assert "requestInfo" in response.json["fields"]


# A PowerShell -EncodedCommand runs to Windows' 32,767 characters: far over any column, and still a request.
LONG_COMMAND = "-EncodedCommand " + "A" * 6000


def test_a_long_command_line_still_becomes_a_ticket(deliver, as_approver):
    body = factories.application_request("long-cmd", cmdArgs=LONG_COMMAND)
    answer = deliver(body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.json["result"]["status"] == contract.INCOMING_PROCESSED
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "long-cmd")
    assert jit.request_info["cmdArgs"] == LONG_COMMAND
    assert json.loads(bytes(incoming_rows()[0].raw_body))["requestInfo"]["cmdArgs"] == LONG_COMMAND
    page = as_approver.get(f"/tickets/{answer.json['result']['ticket']}")
    assert page.status_code == 200
    assert LONG_COMMAND in page.get_data(as_text=True)


def test_long_values_are_kept_whole_and_clipped_only_where_a_column_is_narrow(deliver):
    long_text = "x" * 5000
    body = factories.admin_request("long-admin", UserName=long_text, Reason=long_text, TicketNumber=long_text,
                                   ComputerId=long_text, DurationRequested=long_text)
    answer = deliver(body)
    assert answer.status_code == 200, answer.get_json()
    jit = AdminTicket.get(AdminTicket.request_id == "long-admin")
    assert (jit.reason, len(jit.user_name), len(jit.epm_ticket_number), len(jit.computer_id),
            len(jit.duration_requested)) == (long_text, 255, 100, 100, 32)
    assert len(jit.task.requester) == 255
    update = factories.admin_decision("long-admin", DecisionPerformedByUser=long_text, Duration=long_text)
    assert deliver(update).status_code == 200
    jit = AdminTicket.get_by_id(jit.id)
    assert (jit.decision_final, len(jit.final_decision_by), len(jit.final_duration)) == (True, 255, 32)


def test_a_request_id_over_its_column_is_still_a_field_error(deliver):
    response = deliver(factories.application_request("r" * 101))
    assert response.status_code == 400
    assert response.json["fields"] == {"RequestId": ["RequestId is longer than 100 characters."]}
    assert Task.select().count() == 0


# --- Created events become tickets -------------------------------------------------


def test_application_request_becomes_an_incident_with_its_details(deliver):
    body = factories.application_request()
    response = deliver(body)
    assert response.status_code == 200
    result = response.json["result"]
    assert result["status"] == contract.INCOMING_PROCESSED
    assert result["ticket"] == "INC0010001"
    task = Task.get(Task.number == "INC0010001")
    assert task.sys_class_name == "incident"
    assert task.state_label == "New"
    assert task.kind == contract.KIND_APPLICATION
    assert (task.requester, task.host, task.subject) == ("CORP\\mrivera", "LT-LIS-0142", "Example VPN Client")
    assert re.fullmatch(r"[0-9a-f]{32}", task.sys_id)
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.task == task)
    assert jit.request_id == body["RequestId"]
    assert jit.request_info["sha256Hash"] == body["requestInfo"]["sha256Hash"]
    assert jit.requested_at.isoformat() == "2026-11-20T14:03:11.123456"
    [row] = incoming_rows()
    assert row.sys_id == result["incoming_request"]
    assert row.task_id == task.id
    assert row.processed_at is not None
    assert json.loads(row.body_text) == body


def test_the_answer_to_a_delivery_is_its_json_result_with_the_headers_every_answer_carries(deliver):
    response = deliver(factories.application_request(), headers={"X-Request-Id": "epm-delivery-7"})
    incoming = IncomingRequest.get()
    assert response.status_code == 200
    assert response.get_data() == (b'{"result":{"incoming_request":"' + incoming.sys_id.encode()
                                   + b'","status":"processed","ticket":"INC0010001"}}\n')
    assert sorted(response.headers.items()) == sorted([
        ("Content-Type", "application/json"), ("Content-Length", str(len(response.get_data()))),
        ("X-Request-Id", "epm-delivery-7"), ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store"),
        ("Vary", "Cookie"),
    ])
    assert "Set-Cookie" not in response.headers


def test_admin_request_becomes_a_ticket_with_its_fields(deliver):
    deliver(factories.admin_request(request_id="adm-1"))
    jit = AdminTicket.get(AdminTicket.request_id == "adm-1")
    assert (jit.user_name, jit.duration_requested, jit.reason) == (
        "CORP\\akowalski", "1800", "Install printer driver for the 3rd floor")
    assert jit.task.kind == contract.KIND_ADMIN
    assert jit.task.subject == "Admin access"


def test_the_system_notes_the_creation_on_the_ticket(deliver):
    number = deliver(factories.application_request()).json["result"]["ticket"]
    [note] = WorkNote.select().join(Task).where(Task.number == number)
    assert note.system and number in note.text


def test_numbers_count_up_without_gaps(deliver):
    numbers = [deliver(factories.application_request()).json["result"]["ticket"] for _ in range(3)]
    assert numbers == ["INC0010001", "INC0010002", "INC0010003"]


@pytest.mark.parametrize("ticket_type, first_number, state", [
    ("change_request", "CHG0000001", "New"),
    ("sc_task", "SCTASK0010001", "Open"),
    ("sc_req_item", "RITM0010001", "Open"),
])
def test_configured_ticket_type_decides_the_table_number_and_first_state(deliver, ticket_type, first_number, state):
    Configuration.default()
    Configuration.update(ticket_type=ticket_type).execute()
    number = deliver(factories.admin_request()).json["result"]["ticket"]
    task = Task.get(Task.number == number)
    assert number == first_number
    assert task.sys_class_name == ticket_type
    assert task.state_label == state


def test_changing_the_ticket_type_affects_only_later_requests(deliver):
    first = deliver(factories.application_request()).json["result"]["ticket"]
    Configuration.default()
    Configuration.update(ticket_type="change_request").execute()
    second = deliver(factories.application_request()).json["result"]["ticket"]
    assert (first, second) == ("INC0010001", "CHG0000001")
    assert Task.get(Task.number == first).sys_class_name == "incident"


def test_configured_defaults_fill_the_ticket(deliver):
    Configuration.default()
    Configuration.update(default_short_description="JIT request", default_assignment_group="Service Desk",
                         default_category="Security").execute()
    number = deliver(factories.admin_request()).json["result"]["ticket"]
    task = Task.get(Task.number == number)
    assert (task.short_description, task.assignment_group, task.category) == (
        "JIT request", "Service Desk", "Security")


def test_the_same_created_event_twice_yields_one_ticket(deliver):
    body = factories.application_request()
    first = deliver(body).json["result"]
    second = deliver(body).json["result"]
    assert second["ticket"] == first["ticket"]
    assert second["status"] == contract.INCOMING_DUPLICATE
    assert Task.select().count() == 1
    assert [row.status for row in incoming_rows()] == ["processed", "duplicate"]


# --- What real EPM output looks like -----------------------------------------------


def test_empty_and_unreplaced_placeholders_are_no_value(deliver):
    body = factories.application_request(ComputerGroup="%%ComputerGroup%%", publisher="", productName="%%Product%%")
    number = deliver(body).json["result"]["ticket"]
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == body["RequestId"])
    assert jit.request_info["ComputerGroup"] is None
    assert jit.request_info["publisher"] is None
    task = Task.get(Task.number == number)
    assert task.publisher is None
    assert task.subject == "VPN Client Installer"


@pytest.mark.parametrize("value", ["%%trustedOwnership%%", "%%HOSTNAME%%", "%%hostname%%", " %%Host_Name2%% "])
def test_an_unreplaced_placeholder_in_any_case_is_no_value(deliver, value):
    body = factories.application_request(hostName=value, trustedOwnership=value, customerField=value)
    body["TicketNumber"] = value
    number = deliver(body).json["result"]["ticket"]
    task = Task.get(Task.number == number)
    assert task.host is None
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.task == task)
    assert (jit.request_info["hostName"], jit.request_info["trustedOwnership"]) == (None, None)
    assert jit.request_info["customerField"] is None  # a kept extra key too
    assert jit.epm_ticket_number is None
    assert value in incoming_rows()[0].body_text  # the raw body keeps what EPM sent


@pytest.mark.parametrize("value", ["%%Host Name%%", "see %%HOSTNAME%%", "%%%%"])
def test_text_around_or_inside_percent_signs_is_kept(deliver, value):
    number = deliver(factories.application_request(hostName=value)).json["result"]["ticket"]
    assert Task.get(Task.number == number).host == value


@pytest.mark.parametrize("event", [contract.URM_TICKET_CREATED, contract.ADMIN_TICKET_CREATED])
def test_a_created_event_with_only_event_type_and_request_id_becomes_a_ticket(deliver, event):
    response = deliver({"EventType": event.name, "RequestId": "bare-1"})
    assert response.status_code == 200
    jit = JIT_MODELS[event.kind].get(JIT_MODELS[event.kind].request_id == "bare-1")
    assert jit.task.number == response.json["result"]["ticket"]
    assert (jit.epm_ticket_number, jit.tenant_id, jit.requested_at, jit.reason) == (None, None, None, None)
    assert incoming_rows()[0].status == contract.INCOMING_PROCESSED


@pytest.mark.parametrize("request_info", [None, "%%requestInfo%%", ""])
def test_request_info_null_or_a_placeholder_is_no_value(deliver, request_info):
    body = {**factories.application_request(request_id="app-null"), "requestInfo": request_info}
    del body["TicketNumber"]
    assert deliver(body).status_code == 200
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-null")
    assert (jit.task.subject, jit.request_info) == ("Application", {})
    decision = {**factories.application_decision("app-null"), "requestInfo": request_info}
    assert deliver(decision).json["result"]["status"] == contract.INCOMING_PROCESSED
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-null")
    assert (jit.decision_final, jit.final_decision) == (False, None)  # no decision: still awaiting EPM's


@pytest.mark.parametrize("event", [contract.URM_DECISION_UPDATE, contract.ADMIN_TICKET_UPDATED])
def test_an_update_with_only_event_type_and_request_id_is_recorded(deliver, event):
    created = factories.application_request if event.kind == contract.KIND_APPLICATION else factories.admin_request
    deliver(created(request_id="bare-2"))
    response = deliver({"EventType": event.name, "RequestId": "bare-2"})
    assert response.json["result"]["status"] == contract.INCOMING_PROCESSED
    assert response.json["result"]["ticket"] is not None
    assert not JIT_MODELS[event.kind].get(JIT_MODELS[event.kind].request_id == "bare-2").decision_final


@pytest.mark.parametrize("value, stored", [
    ("1800.0", "1800"), (1800.0, "1800"), ("0900.00", "900"), ("1800.", "1800"), ("1800", "1800"),
    ("1800.5", "1800.5"), ("Once", "Once"),
])
def test_a_count_with_a_zero_fraction_is_the_integer(deliver, value, stored):
    deliver(factories.admin_request(request_id="adm-n", DurationRequested=value))
    deliver(factories.admin_decision("adm-n", Duration=value))
    jit = AdminTicket.get(AdminTicket.request_id == "adm-n")
    assert (jit.duration_requested, jit.task.requested_duration, jit.final_duration) == (stored, stored, stored)


def test_a_count_too_long_to_read_is_a_field_error(deliver):
    response = deliver(factories.admin_request(request_id="count-1", DurationRequested="1" * 5000 + ".0"))
    assert response.status_code == 400
    assert response.json["fields"] == {"DurationRequested": ["DurationRequested is a number too long to be a count."]}
    [row] = incoming_rows()
    assert (row.status, row.request_id) == (contract.INCOMING_ERROR, "count-1")
    assert Task.select().count() == 0


def test_an_application_decisions_duration_with_a_zero_fraction_is_the_integer(deliver):
    deliver(factories.application_request(request_id="app-n"))
    deliver(factories.application_decision("app-n", Duration="3600.0"))
    assert ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-n").final_duration == "3600"


@pytest.mark.parametrize("field", ["RequestId", "TenantId", "TicketNumber", "ComputerId", "UserId", "GroupId"])
@pytest.mark.parametrize("control", ["\x00", "\x07", "\t", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
def test_an_id_carrying_a_control_character_is_refused_naming_the_field(deliver, field, control):
    body = factories.admin_request(request_id="adm-ctl")
    body[field] = control if field != "UserId" else f"S-1-5{control}-21"
    response = deliver(body)
    assert response.status_code == 400
    message = f"{field} must not contain control characters."
    assert response.json["fields"] == {field: [message]}
    assert message in response.json["error"]["detail"]
    [row] = incoming_rows()
    assert (row.status, row.error) == (contract.INCOMING_ERROR, f"{field}: {message}")
    assert row.sys_id == response.json["incoming_request"]
    assert Task.select().count() == 0


def test_a_group_id_in_request_info_carrying_a_control_character_is_refused(deliver):
    response = deliver(factories.application_request(GroupId="7e5d\x1b4c3b"))
    assert response.status_code == 400
    assert response.json["fields"] == {"requestInfo": {"GroupId": ["GroupId must not contain control characters."]}}
    assert incoming_rows()[0].error == "requestInfo: GroupId: GroupId must not contain control characters."
    assert Task.select().count() == 0


def test_ordinary_spaces_in_an_id_are_kept(deliver):
    deliver(factories.admin_request(request_id="adm-sp", ComputerId=" WS 0042 ", UserId="CORP user"))
    jit = AdminTicket.get(AdminTicket.request_id == "adm-sp")
    assert (jit.computer_id, jit.user_id) == ("WS 0042", "CORP user")


def test_free_text_keeps_its_newlines_and_tabs(deliver):
    text = "Install the driver\n\tstep 1: unpack\r\n\tstep 2: run setup.exe /quiet"
    deliver(factories.admin_request(request_id="adm-txt", Reason=text))
    assert AdminTicket.get(AdminTicket.request_id == "adm-txt").reason == text
    deliver(factories.application_request(request_id="app-txt", reason=text, message=text, cmdArgs=text))
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-txt")
    assert (jit.reason, jit.request_info["message"], jit.request_info["cmdArgs"]) == (text, text, text)


def test_duplicate_keys_keep_the_first_filled_value(deliver):
    request_id = "dup-keys-1"
    raw = ('{"EventType": "JIT_ADMIN_TICKET_CREATED", "RequestId": "%s", "UserName": "", '
           '"UserName": "first.user", "UserName": "second.user", "Reason": "r"}' % request_id)
    assert deliver(raw.encode()).status_code == 200
    assert AdminTicket.get(AdminTicket.request_id == request_id).user_name == "first.user"


def test_the_published_template_with_workstyle_twice_is_accepted(deliver):
    raw = json.dumps(factories.application_request(request_id="ws-1"))
    raw = raw.replace('"action": "Elevate"', '"workstyle": "", "action": "Elevate"', 1)
    assert raw.count('"workstyle"') == 2
    assert deliver(raw).status_code == 200
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "ws-1")
    assert jit.request_info["workstyle"] == "Standard Users"


def test_unknown_extra_keys_are_kept(deliver):
    body = factories.application_request(customerField="kept", nested={"a": 1})
    body["ExtraTopLevel"] = "also kept"
    assert deliver(body).status_code == 200
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == body["RequestId"])
    assert jit.request_info["customerField"] == "kept"
    assert jit.request_info["nested"] == {"a": 1}
    assert json.loads(incoming_rows()[0].body_text)["ExtraTopLevel"] == "also kept"


def test_keys_match_without_regard_to_case(deliver):
    body = factories.admin_request()
    body = {key.lower(): value for key, value in body.items()}
    response = deliver(body)
    assert response.status_code == 200
    assert AdminTicket.get(AdminTicket.request_id == body["requestid"]).user_name == "CORP\\akowalski"


def test_a_key_spelled_as_a_fields_inner_name_does_not_replace_what_was_read(deliver):
    # "request_id" and "user_name" are not EPM's keys ("RequestId", "UserName"), but the names the
    # validated values are kept under: such a key is not read, and nothing unvalidated takes their place.
    body = factories.admin_request(user_name={"a": 1}, UserName="CORP\\kept")
    body["request_id"] = ["not", "an", "id"]
    response = deliver(body)
    assert response.status_code == 200, response.get_data(as_text=True)
    ticket = AdminTicket.get(AdminTicket.request_id == body["RequestId"])
    assert ticket.user_name == "CORP\\kept"
    assert json.loads(incoming_rows()[0].body_text)["request_id"] == ["not", "an", "id"]


@pytest.mark.parametrize("first", ["", "%%EventType%%", None])
def test_the_event_type_is_the_first_filled_of_its_spellings(deliver, first):
    request_id = f"event-type-spellings-{first}"
    raw = ('{"eventtype": %s, "EventType": "JIT_ADMIN_TICKET_CREATED", "RequestId": "%s", "UserName": "u"}'
           % (json.dumps(first), request_id))
    response = deliver(raw.encode())
    assert response.status_code == 200, response.get_data(as_text=True)
    assert AdminTicket.get(AdminTicket.request_id == request_id).user_name == "u"


def test_numbers_and_booleans_where_strings_belong_are_read_as_text(deliver):
    body = factories.admin_request(DurationRequested=1800, TicketNumber=100232)
    body["requestInfo"] = None
    assert deliver(body).status_code == 200
    assert AdminTicket.get(AdminTicket.request_id == body["RequestId"]).duration_requested == "1800"


@pytest.mark.parametrize("timestamp, stored", [
    ("2026-11-20T15:10:00.1234567Z", "2026-11-20T15:10:00.123456"),
    ("2026-11-20T15:10:00", "2026-11-20T15:10:00"),
    ("2026-11-20T17:10:00+02:00", "2026-11-20T15:10:00"),
    ("not a time", None),
    ("", None),
    # .NET's DateTime.MinValue and MaxValue with an offset: before year 1 or after 9999 in UTC.
    ("0001-01-01T00:00:00+01:00", None),
    ("9999-12-31T23:59:59.9999999-05:00", None),
    ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00"),
])
def test_timestamps_are_read_as_utc_and_never_fatal(deliver, timestamp, stored):
    body = factories.admin_request(Timestamp=timestamp)
    assert deliver(body).status_code == 200
    requested_at = AdminTicket.get(AdminTicket.request_id == body["RequestId"]).requested_at
    assert (requested_at.isoformat() if requested_at else None) == stored


# --- Update events -------------------------------------------------------------------


def test_update_records_epms_final_decision(deliver):
    deliver(factories.admin_request(request_id="adm-2"))
    response = deliver(factories.admin_decision("adm-2"))
    assert response.json["result"]["status"] == contract.INCOMING_PROCESSED
    jit = AdminTicket.get(AdminTicket.request_id == "adm-2")
    assert jit.decision_final
    assert (jit.final_decision, jit.final_decision_by, jit.final_duration) == ("Approved", "jchen", "1800")
    assert jit.final_decision_time.isoformat() == "2026-11-20T15:12:02"
    assert (jit.final_start_time.isoformat(), jit.final_end_time.isoformat()) == (
        "2026-11-20T15:12:03", "2026-11-20T15:42:03")
    assert jit.task.state_label == "New"


def test_application_update_reads_the_decision_from_request_info(deliver):
    deliver(factories.application_request(request_id="app-2"))
    deliver(factories.application_decision("app-2", Decision="Denied"))
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-2")
    assert (jit.final_decision, jit.final_duration, jit.decision_final) == ("Denied", "3600", True)


def test_update_before_its_created_event_is_kept_and_applied_later(deliver):
    early = deliver(factories.application_decision("app-3")).json["result"]
    assert (early["status"], early["ticket"]) == (contract.INCOMING_RECEIVED, None)
    created = deliver(factories.application_request(request_id="app-3")).json["result"]
    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == "app-3")
    assert jit.decision_final and jit.final_decision == "Approved"
    waiting = IncomingRequest.get(IncomingRequest.sys_id == early["incoming_request"])
    assert waiting.status == contract.INCOMING_PROCESSED
    assert waiting.task.number == created["ticket"]


def test_an_update_sent_twice_before_its_created_event_is_applied_once(deliver):
    first = deliver(factories.application_decision("app-6")).json["result"]
    second = deliver(factories.application_decision("app-6")).json["result"]
    deliver(factories.application_request(request_id="app-6"))
    statuses = {IncomingRequest.get(IncomingRequest.sys_id == answer["incoming_request"]).status
                for answer in (first, second)}
    assert statuses == {contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE}
    assert WorkNote.select().where(WorkNote.text.contains("finalized")).count() == 1


def test_the_same_update_twice_is_a_duplicate(deliver):
    deliver(factories.admin_request(request_id="adm-4"))
    deliver(factories.admin_decision("adm-4"))
    again = deliver(factories.admin_decision("adm-4")).json["result"]
    assert again["status"] == contract.INCOMING_DUPLICATE
    assert WorkNote.select().where(WorkNote.text.contains("finalized")).count() == 1


def test_a_resend_naming_who_decided_fills_in_what_the_recorded_decision_lacked(deliver):
    # EPM's record (reconciliation, a 409) and a template whose placeholders came back unreplaced both leave a
    # final decision without its decider and time: the update that names them fills them in, once.
    deliver(factories.admin_request(request_id="adm-fill"))
    bare = deliver(factories.admin_decision("adm-fill", DecisionPerformedByUser="%%DecisionPerformedByUser%%",
                                            DecisionTime="")).json["result"]
    assert bare["status"] == contract.INCOMING_PROCESSED
    jit = AdminTicket.get(AdminTicket.request_id == "adm-fill")
    assert jit.final_decision == "Approved" and jit.final_decision_by is None and jit.final_decision_time is None

    named = deliver(factories.admin_decision("adm-fill")).json["result"]
    assert named["status"] == contract.INCOMING_PROCESSED
    jit = AdminTicket.get(AdminTicket.request_id == "adm-fill")
    assert jit.final_decision == "Approved" and jit.final_decision_by == "jchen"
    assert jit.final_decision_time == datetime(2026, 11, 20, 15, 12, 2)
    assert Task.get_by_id(jit.task_id).outcome_by == "jchen"
    assert WorkNote.select().where(WorkNote.text.contains("EPM updated its final decision: Approved by jchen"),
                                   WorkNote.task == jit.task_id).count() == 1

    again = deliver(factories.admin_decision("adm-fill")).json["result"]
    assert again["status"] == contract.INCOMING_DUPLICATE, "nothing left to fill in"


MISSING = object()


def _update_saying(kind, request_id, decision):
    """An update event of `kind` whose Decision is `decision` (MISSING: no Decision key at all)."""
    if kind == contract.KIND_ADMIN:
        body = factories.admin_decision(request_id)
        fields = body
    else:
        body = factories.application_decision(request_id)
        fields = body["requestInfo"]
    del fields["Decision"]
    if decision is not MISSING:
        fields["Decision"] = decision
    return body


@pytest.mark.parametrize("kind", [contract.KIND_APPLICATION, contract.KIND_ADMIN])
@pytest.mark.parametrize("decision", [MISSING, "", "  ", None, "%%Decision%%", "%%DECISION%%", "%%decision%%"])
def test_a_first_update_without_a_decision_is_noted_and_the_ticket_awaits_its_decision(deliver, kind, decision):
    Configuration.default()
    Configuration.update(auto_close=True).execute()
    created = factories.admin_request if kind == contract.KIND_ADMIN else factories.application_request
    deliver(created(request_id="undecided-1"))

    answer = deliver(_update_saying(kind, "undecided-1", decision)).json["result"]

    model = JIT_MODELS[kind]
    jit = model.get(model.request_id == "undecided-1")
    assert answer["status"] == contract.INCOMING_PROCESSED and answer["ticket"] == jit.task.number
    assert (jit.decision_final, jit.final_decision, jit.final_decision_by) == (False, None, None)
    assert (jit.task.state_label, jit.task.closed_at) == ("New", None)
    notes = [note.text for note in WorkNote.select().where(WorkNote.task == jit.task)]
    assert not any("finalized" in text for text in notes)
    assert sum("EPM sent an update without a decision" in text for text in notes) == 1

    decided = (factories.admin_decision if kind == contract.KIND_ADMIN else factories.application_decision)
    deliver(decided("undecided-1"))

    jit = model.get(model.request_id == "undecided-1")
    assert (jit.decision_final, jit.final_decision) == (True, "Approved")
    assert jit.task.state_label == "Closed"
    assert WorkNote.select().where(WorkNote.task == jit.task,
                                   WorkNote.text.startswith("EPM finalized the decision: Approved")).count() == 1


def _broker_decision(jit, status):
    """The broker's approval on `jit`'s ticket, in the outbox with `status` (delivered: EPM answered 2xx)."""
    return Decision.create(task=jit.task_id, decision=contract.DECISION_APPROVED, reason="ok", decided_by="jchen",
                           ticket_url="https://broker.example/t", status=status,
                           delivered_at=utcnow() if status == contract.DELIVERY_DELIVERED else None)


@pytest.mark.parametrize("kind", [contract.KIND_APPLICATION, contract.KIND_ADMIN])
@pytest.mark.parametrize("unreadable", ["{decision}", "{Decision}", "Pending", "Approve"])
def test_a_first_update_whose_decision_is_neither_approved_nor_denied_decides_nothing(
        deliver, caplog, kind, unreadable):
    # EPM decides Approved or Denied (contract 3, 5.8); `{decision}` is no `%%placeholder%%` (5.4) but no decision.
    Configuration.default()
    Configuration.update(auto_close=True).execute()
    created = factories.admin_request if kind == contract.KIND_ADMIN else factories.application_request
    deliver(created(request_id="unreadable-1"))
    model = JIT_MODELS[kind]
    _broker_decision(model.get(model.request_id == "unreadable-1"), contract.DELIVERY_DELIVERED)

    with caplog.at_level("WARNING", logger="app.tickets.service"):
        answer = deliver(_update_saying(kind, "unreadable-1", unreadable)).json["result"]

    jit = model.get(model.request_id == "unreadable-1")
    assert answer["status"] == contract.INCOMING_PROCESSED
    assert (jit.decision_final, jit.final_decision) == (False, None)
    assert (jit.task.outcome, jit.task.state_label) == (contract.DECISION_APPROVED, "New")
    notes = [note.text for note in WorkNote.select().where(WorkNote.task == jit.task)]
    assert not any("finalized" in text for text in notes)
    assert sum(f'EPM sent an update whose Decision "{unreadable}" is neither Approved nor Denied' in text
               for text in notes) == 1
    assert [record.getMessage() for record in caplog.records if record.levelname == "WARNING"] == [
        f"EPM's update for ticket {jit.task.number} (RequestId unreadable-1) says Decision {unreadable!r}, "
        "neither Approved nor Denied: read as no decision"]


def test_an_update_whose_decision_is_unreadable_leaves_the_broker_s_decision_to_be_sent(deliver):
    deliver(factories.admin_request(request_id="unreadable-2"))
    waiting = _broker_decision(AdminTicket.get(AdminTicket.request_id == "unreadable-2"), contract.DELIVERY_PENDING)

    deliver(factories.admin_decision("unreadable-2", Decision="{decision}"))

    assert Decision.get_by_id(waiting.id).status == contract.DELIVERY_PENDING, "not settled as not applied"


@pytest.mark.parametrize("spelled", ["approved", "APPROVED", " Approved "])
def test_an_updates_decision_in_any_letter_case_is_recorded_in_the_contracts_spelling(deliver, spelled):
    deliver(factories.admin_request(request_id="cased-1"))
    deliver(factories.admin_decision("cased-1", Decision=spelled))
    jit = AdminTicket.get(AdminTicket.request_id == "cased-1")
    assert (jit.decision_final, jit.final_decision, jit.task.outcome) == (True, "Approved", "Approved")


def test_an_update_without_a_decision_before_its_created_event_leaves_the_ticket_awaiting(deliver):
    early = deliver(_update_saying(contract.KIND_ADMIN, "undecided-2", "%%Decision%%")).json["result"]
    deliver(factories.admin_request(request_id="undecided-2"))
    jit = AdminTicket.get(AdminTicket.request_id == "undecided-2")
    assert (jit.decision_final, jit.final_decision, jit.task.state_label) == (False, None, "New")
    assert IncomingRequest.get(IncomingRequest.sys_id == early["incoming_request"]).status == \
        contract.INCOMING_PROCESSED


def test_auto_close_moves_the_ticket_to_its_closed_state(deliver):
    Configuration.default()
    Configuration.update(auto_close=True).execute()
    deliver(factories.admin_request(request_id="adm-5"))
    deliver(factories.admin_decision("adm-5"))
    task = AdminTicket.get(AdminTicket.request_id == "adm-5").task
    assert task.state_label == "Closed"
    assert task.closed_at is not None
    assert WorkNote.select().where(WorkNote.task == task, WorkNote.text.contains("auto-close")).count() == 1


def test_without_auto_close_the_ticket_stays_open(deliver):
    deliver(factories.admin_request(request_id="adm-6"))
    deliver(factories.admin_decision("adm-6"))
    assert AdminTicket.get(AdminTicket.request_id == "adm-6").task.state_label == "New"
