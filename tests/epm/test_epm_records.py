"""EPM's API records read by path with defaults (contract/epm.md §5.1, 5.2, 5.10), and what their status means."""
import pytest

from app import contract
from app.configuration import update_configuration
from app.epm import records
from app.epm.errors import EpmRejected
from app.errors import BadRequest
from app.models import Configuration
from tests import factories

APPLICATION = factories.epm_api_record("authorization_request")
ADMIN_SINGLE = factories.epm_api_record("admin_access_request_v2_single")
ADMIN_LIST = factories.epm_api_record("admin_access_request_list")


# --- One record from a single read -------------------------------------------------------------


def test_a_single_read_answered_as_an_object_is_the_record():
    assert records.one_record(APPLICATION) is APPLICATION


def test_a_single_read_answered_as_a_one_element_array_is_its_element():
    assert records.one_record(ADMIN_SINGLE) is ADMIN_SINGLE[0]


@pytest.mark.parametrize("key", ["data", "Data"])
def test_a_single_read_answered_in_a_data_envelope_is_its_one_record(key):
    assert records.one_record({key: [APPLICATION], "pageCount": 1}) is APPLICATION


@pytest.mark.parametrize("answer", [[], {"data": []}])
def test_an_empty_array_or_empty_data_means_not_found(answer):
    assert records.one_record(answer) is None


@pytest.mark.parametrize("answer, message", [
    ([APPLICATION, APPLICATION], "2 records instead of one"),
    ({"data": [APPLICATION, APPLICATION]}, "2 records instead of one"),
    ("Approved", "a string, not a record"),
    (None, "null, not a record"),
    (42, "a number, not a record"),
    (["not a record"], "a string inside an array"),
])
def test_any_other_answer_is_a_clear_rejection(answer, message):
    with pytest.raises(EpmRejected, match=message):
        records.one_record(answer)


# --- Reading a record ---------------------------------------------------------------------------


def test_an_application_record_is_read_by_path():
    record = records.read_record(contract.KIND_APPLICATION, APPLICATION)
    assert (record.request_id, record.user, record.created, record.host, record.reason) == (
        "6f1c2a9e-3b7d-4e21-9c55-0a8b7e4d1f20", "ACME\\jdoe", "2026-11-22T05:00:00.1234567Z", "WS-0042",
        "Install printer driver")
    assert (record.status, record.decision, record.decided_by, record.decision_time, record.duration) == (
        "Approved", "Approved", "alice", "2026-11-22 05:03:10", "Once")


def test_serviceticket_is_our_own_ticket_echoed_back_not_epms_ticket_number():
    record = records.read_record(contract.KIND_APPLICATION, APPLICATION)
    assert record.epm_ticket_number is None


@pytest.mark.parametrize("shape, expected", [
    ({"id": "from-id", "requestInfo": {"requestId": "from-info"}, "requestId": "top"}, "from-id"),
    ({"requestInfo": {"requestId": "from-info"}, "requestId": "top"}, "from-info"),
    ({"requestId": "top"}, "top"),
    ({"RequestId": "any-case"}, "any-case"),
    ({"id": None, "requestInfo": {"requestId": ""}}, None),
])
def test_an_application_record_s_request_id_is_tried_where_sources_might_put_it(shape, expected):
    assert records.read_record(contract.KIND_APPLICATION, shape).request_id == expected


def test_an_admin_record_is_read_by_path():
    record = records.read_record(contract.KIND_ADMIN, records.one_record(ADMIN_SINGLE))
    assert (record.request_id, record.epm_ticket_number, record.user, record.reason, record.duration_requested) == (
        "26c08294-9d58-4927-99a4-477186a125f4", "1042", "ACME\\jdoe", "Need to install software", "1800")
    assert (record.status, record.decision, record.duration, record.start_time, record.end_time) == (
        "Approved", "Approved", "1800", "2026-11-22T05:05:00Z", "2026-11-22T05:35:00Z")
    assert (record.user_id, record.computer_id) == ("S-1-5-21-1897974175-2172897935-264522243-4835",
                                                    "e4b4453a-302c-45c4-b64d-272e632f2beb")


def test_an_admin_record_s_request_id_comes_from_requestinfo_only():
    assert records.read_record(contract.KIND_ADMIN, {"id": "x", "requestId": "y"}).request_id is None


def test_a_pending_listed_record_with_nulls_has_no_decision_and_no_values():
    record = records.read_record(contract.KIND_ADMIN, ADMIN_LIST["data"][0])
    assert (record.status, record.decision) == ("Pending", None)
    assert (record.duration, record.start_time, record.end_time) == (None, None, None)


def test_no_key_is_required():
    record = records.read_record(contract.KIND_ADMIN, {})
    assert record.request_id is None and record.status is None and record.decision is None
    assert records.read_record(contract.KIND_APPLICATION, {"requestInfo": "not an object",
                                                           "accessDecision": None}).user is None


@pytest.mark.parametrize("value, expected", [
    (1800, "1800"), (1800.0, "1800"), ("1800", "1800"), ("1800.0", "1800"), (" 900 ", "900"), ("Once", "Once"),
    (None, None), ("", None), ("%%DurationRequested%%", None),
])
def test_numbers_may_be_strings_and_nulls_are_no_value(value, expected):
    record = records.read_record(contract.KIND_ADMIN, {"requestInfo": {"durationRequested": value},
                                                       "accessDecision": {"duration": value}})
    assert (record.duration_requested, record.duration) == (expected, expected)


def test_a_number_too_long_to_convert_is_kept_as_it_came_like_other_text():
    too_long = "1" * 5000 + ".0"  # more digits than Python converts to an integer (4300)
    record = records.read_record(contract.KIND_ADMIN, {"requestInfo": {"durationRequested": too_long},
                                                       "accessDecision": {"duration": f" {too_long} "}})
    assert (record.duration_requested, record.duration) == (too_long, too_long)
    assert records.page_totals({"data": [], "pageCount": too_long, "totalRecordCount": too_long[:-2]}) == (
        None, None)


def test_the_record_is_kept_whole_with_keys_the_broker_does_not_know():
    raw = factories.epm_api_record("authorization_request")
    raw["requestInfo"]["someNewKey"] = {"nested": True}
    raw["riskScore"] = 7
    record = records.read_record(contract.KIND_APPLICATION, raw)
    assert record.raw == raw and record.raw["riskScore"] == 7
    assert record.request_info["someNewKey"] == {"nested": True} and record.request_info["publisher"] == "Contoso Ltd"


def test_dagger_keys_are_read_only_when_present():
    raw = factories.epm_api_record("authorization_request")
    del raw["accessDecision"]["decisionPerformedByUser"], raw["accessDecision"]["decisionTime"]
    record = records.read_record(contract.KIND_APPLICATION, raw)
    assert (record.decided_by, record.decision_time, record.decision) == (None, None, "Approved")


@pytest.mark.parametrize("document, totals", [
    ({"data": [], "pageCount": 3, "totalRecordCount": 401}, (3, 401)),
    ({"Data": [], "PageCount": "3", "TotalRecordCount": "401.0"}, (3, 401)),
    ({"data": []}, (None, None)),
    ({"data": [], "pageCount": "many", "totalRecordCount": None}, (None, None)),
])
def test_page_totals_are_read_in_any_key_case_and_as_numbers_or_text(document, totals):
    assert records.page_records(document) == [] and records.page_totals(document) == totals


# --- What a status means ------------------------------------------------------------------------


@pytest.mark.parametrize("status, decision", [
    ("Approved", "Approved"), ("APPROVED", "Approved"), ("2000", "Approved"), (2000, "Approved"),
    ("Denied", "Denied"), ("denied", "Denied"), ("2001", "Denied"),
    ("Pending", None), ("1000", None), ("Revoked", None), (None, None), ("", None),
])
def test_the_default_mapping_reads_approved_2000_and_denied_2001(status, decision):
    record = records.read_record(contract.KIND_ADMIN, {"accessDecision": {"status": status}})
    assert record.decision == decision


def test_accessdecision_decision_alone_decides_nothing():
    raw = {"accessDecision": {"status": "Pending", "decision": "Approved"}}
    assert records.read_record(contract.KIND_ADMIN, raw).decision is None


def test_a_status_named_as_both_is_undecided():
    mapping = records.StatusMapping.from_settings("Done, Approved", "done")
    assert (mapping.decision("DONE"), mapping.decision("approved")) == (None, "Approved")


def test_the_configuration_starts_with_the_default_mapping(app):
    configuration = Configuration.default()
    assert (configuration.epm_approved_statuses, configuration.epm_denied_statuses) == ("Approved, 2000",
                                                                                        "Denied, 2001")
    assert records.StatusMapping.of(configuration) == records.DEFAULT_MAPPING


def test_a_custom_mapping_set_through_the_configuration_is_used(app):
    update_configuration({"epm_approved_statuses": " Granted ,3,, granted", "epm_denied_statuses": "Refused"})
    configuration = Configuration.default()
    assert (configuration.epm_approved_statuses, configuration.epm_denied_statuses) == ("Granted, 3", "Refused")
    mapping = records.StatusMapping.of(configuration)
    assert [mapping.decision(status) for status in ("GRANTED", "3", "refused", "Approved", "2001")] == [
        "Approved", "Approved", "Denied", None, None]


def test_a_mapping_must_name_a_status_and_may_not_name_one_twice(app):
    with pytest.raises(BadRequest) as empty:
        update_configuration({"epm_approved_statuses": " , "})
    assert "epm_approved_statuses" in empty.value.extra["fields"]
    with pytest.raises(BadRequest) as both:
        update_configuration({"epm_denied_statuses": "Denied, approved"})
    assert "also an approved status" in both.value.extra["fields"]["epm_denied_statuses"]
    assert Configuration.default().epm_denied_statuses == "Denied, 2001"


def test_the_mapping_is_set_with_jitbroker_config_set(runner):
    result = runner.invoke(args=["config", "set", "epm_approved_statuses=Approved,2000,Granted"])
    assert result.exit_code == 0, result.output
    assert Configuration.default().epm_approved_statuses == "Approved, 2000, Granted"
    assert "epm_approved_statuses = Approved, 2000, Granted" in runner.invoke(args=["config", "show"]).output


@pytest.mark.parametrize("raw, said", [
    (None, "EPM does not know request r-1"),
    ({"accessDecision": {"status": "Pending"}}, "status Pending, undecided"),
    ({"accessDecision": {"status": "2000", "decisionPerformedByUser": "alice", "duration": 1800,
                         "startTime": "2026-11-22T05:05:00Z", "endTime": "2026-11-22T05:35:00Z"}},
     "status 2000, Approved, by alice, duration 30 minutes, from 2026-11-22T05:05:00Z to 2026-11-22T05:35:00Z"),
])
def test_a_record_is_described_for_a_person(raw, said):
    record = None if raw is None else records.read_record(contract.KIND_ADMIN, raw)
    assert records.describe(record, "r-1") == said
