"""Check with EPM on the ticket page: reads the one request from EPM (served with `responses` in section 5's
shapes), records what EPM says, finalizes a decision the ticket lacks, and changes nothing when EPM fails."""
import html
import json

import pytest
import requests

from app import contract
from app.audit.models import AuditEntry
from app.models import Task, WorkNote
from tests import factories
from tests.jobs.conftest import (  # noqa: F401 - epm_api is a fixture
    LIST_URLS, TOKEN_URL, admin_record, application_record, epm_api,
)


def page_text(response):
    return html.unescape(response.get_data(as_text=True))


def check(web, task):
    return web.post(f"/tickets/{task.number}/check", follow_redirects=True)


def notes(task):
    return [note.text for note in WorkNote.select().where(WorkNote.task == task).order_by(WorkNote.id)]


def test_a_decision_epm_shows_is_recorded_and_finalized(as_approver, epm_api, admin_ticket):
    request_id = admin_ticket.request_id
    record = admin_record(request_id, status="Approved", decisionPerformedByUser="alice", duration="1800",
                          startTime="2026-11-22T05:05:00Z", endTime="2026-11-22T05:35:00Z")
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}", json=[record])  # v2 answers an array

    page = page_text(check(as_approver, admin_ticket))

    said = ("status Approved, Approved, by alice, duration 30 minutes, "
            "from 2026-11-22T05:05:00Z to 2026-11-22T05:35:00Z")
    assert f"Checked with EPM: {said}." in page and "Recorded EPM's final decision: Approved." in page
    assert f"EPM said: {said} at" in page
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert (jit.decision_final, jit.final_decision, jit.final_decision_by, jit.final_duration) == (
        True, "Approved", "alice", "1800")
    assert jit.epm_record == record and jit.epm_checked_at is not None
    assert f"Checked with EPM: {said}." in notes(admin_ticket)
    entry = AuditEntry.get(AuditEntry.action == "epm_check")
    assert (entry.actor, entry.object_id, entry.detail["finalized"]) == ("jchen", admin_ticket.number, "Approved")
    [read] = [call for call in epm_api.mock.calls if call.request.method == "GET"]
    assert read.request.url == f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}"


def test_a_record_whose_text_holds_a_nul_is_recorded_with_its_text_made_storable(as_approver, epm_api, admin_ticket):
    request_id = admin_ticket.request_id
    record = admin_record(request_id, status="Denied", decisionPerformedByUser="ali\u0000ce")
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}", json=[record])

    response = check(as_approver, admin_ticket)

    assert response.status_code == 200 and "Recorded EPM's final decision: Denied." in page_text(response)
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert jit.final_decision_by == "ali\ufffdce"  # as a webhook's text is stored
    assert jit.epm_record["accessDecision"]["decisionPerformedByUser"] == "ali\ufffdce"


def test_a_pending_request_is_recorded_without_a_decision(as_approver, epm_api, application_ticket):
    request_id = application_ticket.request_id
    record = application_record(request_id, status="Pending")
    record["requestInfo"]["newKey"] = "kept"
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_APPLICATION]}/{request_id}", json=record)

    page = page_text(check(as_approver, application_ticket))

    assert "Checked with EPM: status Pending, undecided." in page and "EPM said: status Pending, undecided at" in page
    jit = Task.get_by_id(application_ticket.id).jit_request
    assert not jit.decision_final and jit.epm_record["requestInfo"]["newKey"] == "kept"
    assert AuditEntry.get(AuditEntry.action == "epm_check").detail["status"] == "Pending"


def test_an_unknown_request_is_recorded_as_unknown(as_admin, epm_api, application_ticket):
    request_id = application_ticket.request_id
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_APPLICATION]}/{request_id}", json={"data": []})

    page = page_text(check(as_admin, application_ticket))

    assert f"Checked with EPM: EPM does not know request {request_id}." in page
    assert f"EPM said it does not know request {request_id} at" in page
    jit = Task.get_by_id(application_ticket.id).jit_request
    assert jit.epm_record is None and jit.epm_checked_at is not None and not jit.decision_final
    assert AuditEntry.get(AuditEntry.action == "epm_check").detail["found"] is False


def test_a_404_is_an_unknown_request_too(as_approver, epm_api, admin_ticket):
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{admin_ticket.request_id}", status=404)
    assert f"EPM does not know request {admin_ticket.request_id}" in page_text(check(as_approver, admin_ticket))


def test_a_ticket_already_final_is_not_finalized_again(as_approver, epm_api, deliver, admin_ticket):
    deliver(factories.admin_decision(admin_ticket.request_id))  # the update webhook: Approved by jchen
    finalized_notes = [text for text in notes(admin_ticket) if text.startswith("EPM finalized")]
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{admin_ticket.request_id}",
                     json=admin_record(admin_ticket.request_id, status="Approved"))

    page = page_text(check(as_approver, admin_ticket))

    assert "Recorded EPM's final decision" not in page
    assert [text for text in notes(admin_ticket) if text.startswith("EPM finalized")] == finalized_notes
    assert Task.get_by_id(admin_ticket.id).jit_request.final_decision_by == "jchen"


def test_an_approval_epm_shows_after_its_revocation_arrived_makes_the_ticket_read_revoked(as_approver, epm_api, deliver,
                                                                                          admin_ticket):
    request_id = admin_ticket.request_id
    deliver(factories.admin_revocation(request_id))  # the approval's webhook was lost: EPM's record still shows it
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}", json=[admin_record(
        request_id, status="Approved", decisionPerformedByUser="jchen", decisionTime="2026-11-20T15:12:02Z",
        duration="1800", startTime="2026-11-20T15:12:03Z", endTime="2026-11-20T15:42:03Z")])

    page = page_text(check(as_approver, admin_ticket))

    assert "Recorded EPM's final decision" not in page, "an older state decides nothing"
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert (jit.final_decision, jit.final_decision_by, jit.epm_outcome) == ("Denied", "secops-lead", "Revoked")
    told = ("EPM sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) after the newer one: the ticket "
            "now reads Revoked, as it would have in order. Nothing is sent to EPM for it.")
    assert notes(admin_ticket)[-1] == told and told in page
    check(as_approver, admin_ticket)
    assert notes(admin_ticket).count(told) == 1, "checked again, the record tells nothing new"


def test_an_epm_error_is_shown_and_changes_nothing(as_approver, epm_api, admin_ticket):
    epm_api.mock.replace("POST", TOKEN_URL, status=401, json={"error": "invalid_client"})
    before = notes(admin_ticket)

    page = page_text(check(as_approver, admin_ticket))

    assert "Could not check with EPM: EPM refused the token request" in page
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert jit.epm_checked_at is None and notes(admin_ticket) == before
    assert AuditEntry.select().where(AuditEntry.action == "epm_check").count() == 0


def test_a_host_that_is_down_is_shown_and_changes_nothing(as_approver, epm_api, application_ticket):
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_APPLICATION]}/{application_ticket.request_id}",
                     body=requests.ConnectionError("Connection refused"))
    page = page_text(check(as_approver, application_ticket))
    assert "Could not check with EPM: Connection refused by" in page
    assert Task.get_by_id(application_ticket.id).jit_request.epm_checked_at is None


def test_an_unconfigured_connection_is_shown(as_approver, application_ticket):
    page = page_text(check(as_approver, application_ticket))
    assert "Could not check with EPM: The PMC Service Host Name is empty." in page
    assert Task.get_by_id(application_ticket.id).jit_request.epm_checked_at is None


def test_the_check_needs_the_csrf_token(as_approver, epm_api, application_ticket):
    answer = as_approver.request("POST", f"/tickets/{application_ticket.number}/check")
    assert answer.status_code == 400
    assert Task.get_by_id(application_ticket.id).jit_request.epm_checked_at is None


def test_the_page_offers_the_check_and_says_when_never_checked(as_approver, application_ticket):
    page = page_text(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert f'action="/tickets/{application_ticket.number}/check"' in page and "Not checked with EPM yet." in page


def test_a_decision_whose_record_cannot_be_read_is_reported_not_recorded(as_approver, epm_api, admin_ticket):
    record = admin_record(admin_ticket.request_id, status="Denied")
    record["requestInfo"]["ticketId"] = "10\x0142"
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{admin_ticket.request_id}", json=record)

    page = page_text(check(as_approver, admin_ticket))

    assert "Checked with EPM: status Denied, Denied. EPM's decision could not be read from its record" in page
    assert "TicketNumber must not contain control characters" in page
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert not jit.decision_final and jit.epm_record == record


def nested_record_body(record, depth):
    """`record` as JSON text with one requestInfo key holding arrays nested `depth` deep (json.dumps would refuse)."""
    text = json.dumps(record)
    return text.replace('"requestInfo": {', '"requestInfo": {"deep": ' + "[" * depth + "]" * depth + ", ", 1)


@pytest.mark.parametrize("depth", [600, 100_000])
def test_a_record_nested_too_deeply_is_reported_and_changes_nothing(as_approver, epm_api, admin_ticket, depth):
    request_id = admin_ticket.request_id
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}",
                     body=nested_record_body(admin_record(request_id, status="Denied"), depth),
                     content_type="application/json")
    before = notes(admin_ticket)

    response = check(as_approver, admin_ticket)

    assert response.status_code == 200
    assert ("Could not check with EPM: EPM's record of the request could not be read: "
            "it nests its arrays and objects too deeply.") in page_text(response)
    jit = Task.get_by_id(admin_ticket.id).jit_request
    assert jit.epm_checked_at is None and jit.epm_record is None and not jit.decision_final
    assert notes(admin_ticket) == before
    assert AuditEntry.select().where(AuditEntry.action == "epm_check").count() == 0


def test_a_count_too_long_to_read_is_reported_as_an_unreadable_decision(as_approver, epm_api, admin_ticket):
    request_id = admin_ticket.request_id
    epm_api.mock.get(f"{LIST_URLS[contract.KIND_ADMIN]}/{request_id}",
                     json=[admin_record(request_id, status="Approved", duration="1" * 5000 + ".0")])

    response = check(as_approver, admin_ticket)

    page = page_text(response)
    assert response.status_code == 200 and "EPM's decision could not be read from its record" in page
    assert "Duration is a number too long to be a count" in page
    assert "4300" not in page and "Exceeds the limit" not in page
    assert not Task.get_by_id(admin_ticket.id).jit_request.decision_final
