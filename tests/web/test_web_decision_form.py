"""The approve and deny forms: the contract's rules in the browser's data and on the server."""
import re

import pytest
from markupsafe import escape

from app import contract
from app.models import Decision, Task
from tests import factories
from tests.webclient import CONFIRMED


def text_of(response):
    return response.get_data(as_text=True)


def approve(web, task, **fields):
    return web.post(f"/tickets/{task.number}/approve", {"reason": "Needed for work", **fields})


def test_approve_form_has_reason_duration_and_the_contract_messages(as_approver, application_ticket):
    response = as_approver.get(f"/tickets/{application_ticket.number}/approve")
    assert response.status_code == 200
    page = text_of(response)
    assert "<h1>Approve Application Access</h1>" in page
    assert 'for="reason"' in page and 'name="duration_unit" value="once"' in page
    for message in (contract.MSG_REASON_REQUIRED, contract.MSG_MINUTES_RANGE, contract.MSG_HOURS_RANGE):
        assert f'"{message}"' in page
    assert 'data-min-minutes="5"' in page and 'data-max-hours="24"' in page
    assert "decision-form.js" in page


def preselected_duration(page):
    """The checked unit and the value field's content of an approve form."""
    unit = re.search(r'name="duration_unit" value="(\w+)"\s+checked', page).group(1)
    return unit, re.search(r'name="duration_value" type="number" value="([^"]*)"', page).group(1)


@pytest.mark.parametrize("requested, shown", [
    ("1800", ("minutes", "30")),
    ("7200", ("hours", "2")),
    ("5400", ("minutes", "90")),
    ("86400.0", ("hours", "24")),
    ("300", ("minutes", "5")),
    (None, ("once", "")),
    ("", ("once", "")),
    ("240", ("once", "")),
    ("90000", ("once", "")),
    ("1830", ("once", "")),
    ("%%DurationRequested%%", ("once", "")),
])
def test_admin_approve_form_starts_at_the_requested_duration(as_approver, make_ticket, requested, shown):
    body = factories.admin_request(DurationRequested=requested)
    if requested is None:
        del body["DurationRequested"]
    ticket = make_ticket(body)
    assert preselected_duration(text_of(as_approver.get(f"/tickets/{ticket.number}/approve"))) == shown


def test_application_approve_form_starts_at_once(as_approver, application_ticket):
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}/approve"))
    assert preselected_duration(page) == ("once", "")


def test_deny_form_has_no_duration(as_approver, admin_ticket):
    page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}/deny"))
    assert "<h1>Deny Admin Access</h1>" in page
    assert "duration_unit" not in page.split("<form")[-1].split("</form>")[0].replace("data-", "")


def test_blank_reason_is_refused_with_the_contract_message(as_approver, application_ticket):
    response = approve(as_approver, application_ticket, reason="   ", duration_unit="once")
    assert response.status_code == 400
    assert contract.MSG_REASON_REQUIRED in text_of(response)
    assert Decision.select().count() == 0


def test_a_reason_over_its_length_is_refused_and_the_form_says_so(as_approver, application_ticket):
    form = text_of(as_approver.get(f"/tickets/{application_ticket.number}/approve"))
    assert f'maxlength="{contract.MAX_REASON_LENGTH}"' in form
    longest = "x" * contract.MAX_REASON_LENGTH
    response = approve(as_approver, application_ticket, reason=longest + "y", duration_unit="once")
    assert response.status_code == 400
    assert contract.MSG_REASON_TOO_LONG in text_of(response)
    assert Decision.select().count() == 0
    assert approve(as_approver, application_ticket, reason=longest, duration_unit="once").status_code == 302


@pytest.mark.parametrize("unit, value, message", [
    ("minutes", "4", contract.MSG_MINUTES_RANGE),
    ("minutes", "1441", contract.MSG_MINUTES_RANGE),
    ("minutes", "", contract.MSG_MINUTES_RANGE),
    ("hours", "0", contract.MSG_HOURS_RANGE),
    ("hours", "25", contract.MSG_HOURS_RANGE),
    ("hours", "2.5", contract.MSG_HOURS_RANGE),
    ("minutes", "0" * 5000 + "30", contract.MSG_MINUTES_RANGE),  # past Python's 4,300 digits for int()
])
def test_duration_out_of_range_is_refused(as_approver, application_ticket, unit, value, message):
    response = approve(as_approver, application_ticket, duration_unit=unit, duration_value=value)
    assert response.status_code == 400
    page = text_of(response)
    assert f'id="duration_value-error" >{message}</p>' in page
    assert 'aria-invalid="true"' in page
    assert str(escape(value)) in page  # what the approver typed is kept
    assert Decision.select().count() == 0


def test_approval_is_recorded_and_shown_even_before_epm_is_configured(as_approver, application_ticket):
    response = approve(as_approver, application_ticket, duration_unit="hours", duration_value="2")
    assert response.status_code == 302
    decision = Decision.get()
    assert (decision.decision, decision.duration_unit, decision.duration_value) == ("Approved", "hours", 2)
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert "Waiting to be sent to EPM" in page
    assert "2 hours" in page and "Needed for work" in page
    assert "Approve Application Access</a>" not in page
    assert contract.MSG_DECISION_IN_FLIGHT in page


def test_approval_is_delivered_to_epm(as_approver, application_ticket, fake_epm):
    response = approve(as_approver, application_ticket, duration_unit="minutes", duration_value="30")
    assert response.status_code == 302
    assert "Delivered to EPM" in text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    sent = fake_epm.decision_for(application_ticket.request_id)
    assert sent["decision"] == "Approved" and sent["duration"] == "1800"
    assert sent["ticketUrl"].endswith(f"/tickets/{application_ticket.number}")


def test_denial_is_delivered_to_epm(as_approver, admin_ticket, fake_epm):
    response = as_approver.post(f"/tickets/{admin_ticket.number}/deny", {"reason": "Not approved by manager"})
    assert response.status_code == 302
    assert fake_epm.decision_for(admin_ticket.request_id)["decision"] == "Denied"
    page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}"))
    assert "Not approved by manager" in page
    assert contract.MSG_FINAL in page


def test_decision_on_an_inactive_ticket_is_refused(as_approver, application_ticket):
    Task.update(state=contract.INCIDENT.state_value("Closed")).where(Task.id == application_ticket.id).execute()
    response = approve(as_approver, application_ticket, duration_unit="once")
    assert response.status_code == 409
    assert contract.MSG_INACTIVE in text_of(response)


def test_second_decision_after_epm_accepted_one_is_refused(as_approver, application_ticket, fake_epm):
    approve(as_approver, application_ticket, duration_unit="once")
    response = as_approver.post(f"/tickets/{application_ticket.number}/deny", {"reason": "Changed my mind"})
    assert response.status_code == 409
    assert contract.MSG_FINAL in text_of(response)


def test_admin_retries_a_waiting_delivery(as_admin, application_ticket, app):
    approve(as_admin, application_ticket, duration_unit="once")
    page = text_of(as_admin.get(f"/tickets/{application_ticket.number}"))
    assert ">Retry now</button>" in page
    response = as_admin.post(f"/tickets/{application_ticket.number}/retry", follow_redirects=True)
    assert "Delivery: Waiting to be sent to EPM." in text_of(response)
    assert Decision.get().attempts == 2


def test_users_cannot_retry_deliveries(as_approver, application_ticket):
    approve(as_approver, application_ticket, duration_unit="once")
    assert ">Retry now</button>" not in text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert as_approver.post(f"/tickets/{application_ticket.number}/retry").status_code == 403


def test_retry_all_from_the_configuration_page(as_admin, application_ticket, fake_epm):
    Decision.create(task=application_ticket, decision="Approved", reason="r", duration_unit="once",
                    duration_sent="Once", decided_by="root", ticket_url="http://x/tickets/1")
    response = as_admin.post("/admin/deliveries/retry", CONFIRMED, follow_redirects=True)
    assert "Tried 1 waiting decision(s); 1 delivered to EPM." in text_of(response)


def test_test_connection_says_connection_ok(as_admin, fake_epm):
    response = as_admin.post("/admin/configuration/test", follow_redirects=True)
    assert "Connection OK" in text_of(response)


def test_test_connection_shows_why_it_failed(as_admin, fake_epm):
    fake_epm.rotate_secret("a-new-secret")
    response = as_admin.post("/admin/configuration/test", follow_redirects=True)
    page = text_of(response)
    assert "Test Connection failed:" in page
    assert "Connection OK" not in page


def test_unknown_decision_slug_is_404(as_approver, application_ticket):
    assert as_approver.get(f"/tickets/{application_ticket.number}/maybe").status_code == 404


def test_work_note_from_another_ticket_number_is_404(as_approver, app):
    assert as_approver.post("/tickets/INC0000000/notes", {"work_note": "x"}).status_code == 404


def test_approve_form_states_the_requested_duration_in_words_and_the_opening_time(as_approver, make_ticket):
    task = make_ticket(factories.admin_request(DurationRequested="2700"))
    page = text_of(as_approver.get(f"/tickets/{task.number}/approve"))
    assert '<p class="requested-duration">Requested duration: 45 minutes</p>' in page
    assert '<time class="local-time" datetime="' in page and 'title="' in page
    assert "local-time.js" in page


def test_a_stale_form_posted_after_the_decision_gets_a_message_and_no_second_decision(
        as_approver, application_ticket, fake_epm):
    assert approve(as_approver, application_ticket, duration_unit="once").status_code == 302
    response = approve(as_approver, application_ticket, duration_unit="hours", duration_value="2")
    assert response.status_code == 409
    page = text_of(response)
    assert f'<p class="flash error" role="alert" id="form-message">{contract.MSG_FINAL}</p>' in page
    number = application_ticket.number
    assert f'<a href="/tickets/{number}">Open {number} to see its decision</a>' in page
    assert "<form method=\"post\" class=\"decision-form\"" not in page
    assert Decision.select().count() == 1
    assert fake_epm.received_count == 1


def test_a_form_with_a_field_to_fix_is_shown_again_with_what_was_typed(as_approver, application_ticket):
    response = approve(as_approver, application_ticket, duration_unit="minutes", duration_value="3")
    assert response.status_code == 400
    page = text_of(response)
    assert 'class="decision-form"' in page and "Needed for work</textarea>" in page
    assert "to see its decision" not in page
