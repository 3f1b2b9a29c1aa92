"""The ticket page: every detail an approver needs, EPM's final decision, notes, state, escaping."""
import re
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from markupsafe import escape

from app import contract
from app.models import AdminTicket, Decision, Task, utcnow
from app.web import labels
from app.web.formatting import duration_words, time_element, timestamp
from tests import factories


TIME_TAGS = re.compile(r"<time [^>]*>|</time>")


def text_of(response):
    """The page's HTML with its <time> elements unwrapped, so assertions read the UTC text a person sees."""
    return TIME_TAGS.sub("", response.get_data(as_text=True))


def test_application_ticket_shows_everything_an_approver_needs(as_approver, make_ticket):
    body = factories.application_request(reputationScore="87", reputationIntegrationType="VirusTotal")
    task = make_ticket(body)
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    info = body["requestInfo"]
    for key in ("user", "hostName", "productName", "productVersion", "publisher", "sha1Hash", "sha256Hash",
                "reason", "cmdArgs", "workstyle", "applicationGroup", "osName", "parentProcess", "reputationScore",
                "reputationIntegrationType"):
        assert str(escape(info[key])) in page, key
    assert "C:\\Users\\mrivera\\Downloads\\vpnclient-5.2.1.exe" in page
    for label in ("File path", "SHA-1", "SHA-256", "Command-line arguments", "Parent process", "Reputation score"):
        assert f"<dt>{label}</dt>" in page
    assert "Everything EPM sent" in page
    assert body["TicketNumber"] in page


def test_admin_ticket_shows_user_computer_group_duration_reason_and_times(as_approver, make_ticket):
    body = factories.admin_request()
    task = make_ticket(body)
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    for key in ("UserName", "UserId", "ComputerId", "GroupId", "Reason", "TicketNumber"):
        assert body[key] in page, key
    assert "<dt>Duration requested</dt><dd>30 minutes</dd>" in page
    for label in ("User name", "User ID", "Computer ID", "Group ID", "Duration requested", "Request time",
                  "EPM ticket number"):
        assert f"<dt>{label}</dt>" in page
    assert "2026-11-20 15:10:00 UTC" in page


def test_unknown_ticket_is_404(as_approver):
    response = as_approver.get("/tickets/INC9999999")
    assert response.status_code == 404
    assert "INC9999999" in text_of(response)


def test_epm_values_are_escaped_and_download_url_is_not_a_link(as_approver, make_ticket):
    evil = "<script>alert('x')</script>"
    task = make_ticket(factories.application_request(
        productName=evil, cmdArgs=evil, publisher=evil, reason=evil, user=evil,
        downloadSourceUrl="https://evil.example/payload.exe\"><script>alert(1)</script>"))
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    assert "<script>alert" not in page
    assert "&lt;script&gt;" in page
    assert "https://evil.example/payload.exe" in page
    assert 'href="https://evil.example' not in page


def test_system_notes_are_shown(as_approver, application_ticket):
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert "received from EPM" in page
    assert 'class="system"' in page


def test_approver_adds_a_work_note(as_approver, application_ticket):
    response = as_approver.post(f"/tickets/{application_ticket.number}/notes", {"work_note": "Called <the> user"})
    assert response.status_code == 302
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert "Called &lt;the&gt; user" in page
    assert re.search(r'<li class="person">\s*<p class="note-meta"><strong>jchen</strong>', page)


def test_blank_work_note_is_refused(as_approver, application_ticket):
    response = as_approver.post(f"/tickets/{application_ticket.number}/notes", {"work_note": "  "})
    assert response.status_code == 400


def test_approver_changes_the_state(as_approver, application_ticket):
    response = as_approver.post(f"/tickets/{application_ticket.number}/state", {"state": "On Hold"})
    assert response.status_code == 302
    assert Task.get_by_id(application_ticket.id).state_label == "On Hold"
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert '<option value="On Hold" selected>' in page
    assert "State changed from New to On Hold by jchen" in page


def test_state_select_offers_the_ticket_types_labels(as_approver, application_ticket):
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    for _, label in contract.INCIDENT.states:
        assert f'<option value="{label}"' in page


def test_unknown_state_is_refused(as_approver, application_ticket):
    assert as_approver.post(f"/tickets/{application_ticket.number}/state", {"state": "Bogus"}).status_code == 400


def test_decision_actions_are_named_for_the_kind(as_approver, application_ticket, admin_ticket):
    app_page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert ">Approve Application Access</a>" in app_page
    assert ">Deny Application Access</a>" in app_page
    admin_page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}"))
    assert ">Approve Admin Access</a>" in admin_page
    assert ">Deny Admin Access</a>" in admin_page
    assert labels.ACTION_LABELS[(contract.DECISION_DENIED, contract.KIND_ADMIN)] == "Deny Admin Access"


def test_decision_actions_are_hidden_when_the_state_is_inactive(as_approver, application_ticket):
    application_ticket.state = contract.INCIDENT.state_value("Resolved")
    application_ticket.save()
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert "Approve Application Access" not in page
    assert contract.MSG_INACTIVE in page


def test_epm_finalized_decision_is_shown(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-final"))
    deliver(factories.admin_decision("adm-final"))
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    assert "EPM's finalized decision" in page
    for text in ("Approved", "2026-11-20 15:12:02 UTC", "2026-11-20 15:12:03 UTC", "2026-11-20 15:42:03 UTC",
                 "jchen", "<dt>Duration</dt><dd>30 minutes</dd>"):
        assert text in page
    assert "Approve Admin Access" not in page
    assert contract.MSG_FINAL in page


# --- EPM's later updates (contract/epm.md 5.3) ---------------------------------------


def epm_section(page):
    """The page from the EPM decision heading to the end of the decision panel."""
    return page[page.index("EPM's finalized decision"):page.index('aria-labelledby="ticket-heading"')]


def test_a_revocation_shows_revoked_and_both_events_in_the_history(as_admin, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-revoked"))
    deliver(factories.admin_decision("adm-revoked"))
    deliver(factories.admin_revocation("adm-revoked"))
    page = text_of(as_admin.get(f"/tickets/{task.number}"))
    section = epm_section(page)
    assert "<dt>Latest state</dt><dd>Revoked at 2026-11-20 15:20:40 UTC by secops-lead</dd>" in section
    assert "<dt>Decision</dt><dd>Denied</dd>" in section
    history = page[page.index('id="history"'):]
    assert history.index("EPM finalized the decision: Approved by jchen") < history.index(
        "EPM revoked the approval: Denied by secops-lead")
    assert "Conflicting update" not in page
    assert Decision.select().count() == 0


def test_the_approval_resent_after_its_revocation_leaves_the_page_revoked(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-resent"))
    deliver(factories.admin_decision("adm-resent"))
    deliver(factories.admin_revocation("adm-resent"))
    deliver(factories.admin_decision("adm-resent"))
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    assert "<dd>Revoked at 2026-11-20 15:20:40 UTC by secops-lead</dd>" in epm_section(page)
    assert "EPM re-sent an older update (Approved by jchen at 2026-11-20 15:12:02 UTC) that changes nothing" in page


def test_an_early_end_shows_ended_early_with_its_end_time(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-ended"))
    deliver(factories.admin_decision("adm-ended"))
    deliver(factories.admin_decision("adm-ended", EndTime="2026-11-20T15:25:10Z"))
    section = epm_section(text_of(as_approver.get(f"/tickets/{task.number}")))
    assert "<dt>Latest state</dt><dd>Ended early at 2026-11-20 15:25:10 UTC by jchen</dd>" in section
    assert "<dt>Decision</dt><dd>Approved</dd>" in section


def test_a_final_decision_nothing_changed_shows_no_latest_state(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-plain"))
    deliver(factories.admin_decision("adm-plain"))
    assert "Latest state" not in text_of(as_approver.get(f"/tickets/{task.number}"))


def test_an_approval_after_an_acknowledged_denial_shows_the_conflict(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-conflict"))
    Decision.create(task=task, decision=contract.DECISION_DENIED, reason="Not today", decided_by="jchen",
                    ticket_url="https://broker.example/x", status=contract.DELIVERY_DELIVERED, delivered_at=utcnow())
    deliver(factories.admin_decision("adm-conflict", DecisionPerformedByUser="<b>mallory</b>"))
    section = epm_section(text_of(as_approver.get(f"/tickets/{task.number}")))
    assert "Conflicting update from EPM" in section
    for row in ("<dt>Decision EPM sent</dt><dd>Approved</dd>", "<dt>The ticket keeps</dt><dd>Denied</dd>",
                "<dt>Decision time sent</dt><dd>2026-11-20 15:12:02 UTC</dd>",
                "<dt>Performed by</dt><dd>&lt;b&gt;mallory&lt;/b&gt;</dd>"):
        assert row in section
    assert "<b>mallory</b>" not in section
    assert Decision.select().count() == 1


# --- Words a person reads ------------------------------------------------------------


@pytest.mark.parametrize("value, words", [
    ("1800", "30 minutes"), ("2700", "45 minutes"), ("7200", "2 hours"), ("3600", "1 hour"),
    ("5400", "1 hour 30 minutes"), ("86400", "24 hours"), ("86400.0", "24 hours"), ("60", "1 minute"),
    ("1830", "30 minutes 30 seconds"), (1800, "30 minutes"), ("Once", "Once"), ("once", "Once"),
    (None, ""), ("", ""), ("soon", "soon"), ("-5", "-5"), ("1.5", "1.5"),
])
def test_durations_are_words_never_bare_seconds(value, words):
    assert duration_words(value) == words


@pytest.mark.parametrize("value", ["1" * 5000, "1" * 5000 + ".0", "1e300", "x" * 500])
def test_a_duration_too_long_to_read_is_cut_short(value):
    words = duration_words(value)
    assert len(words) <= 40 and words.endswith("…"), words


def test_a_time_is_utc_text_with_utc_on_hover_for_the_local_time_script():
    element = time_element(datetime(2026, 11, 20, 15, 10))
    assert element == ('<time class="local-time" datetime="2026-11-20T15:10:00Z" '
                       'title="2026-11-20 15:10:00 UTC">2026-11-20 15:10:00 UTC</time>')
    assert time_element(None) == ""


def test_ticket_page_times_are_time_elements_and_load_the_local_time_script(as_approver, admin_ticket):
    page = as_approver.get(f"/tickets/{admin_ticket.number}").get_data(as_text=True)
    assert ('<dt>Request time</dt><dd><time class="local-time" datetime="2026-11-20T15:10:00Z" '
            'title="2026-11-20 15:10:00 UTC">2026-11-20 15:10:00 UTC</time></dd>') in page
    assert '<script src="/static/local-time.js" defer></script>' in page
    assert "<script>" not in page


def test_epm_durations_are_words_on_the_ticket_page(as_approver, deliver, make_ticket):
    task = make_ticket(factories.admin_request(request_id="adm-45", DurationRequested="2700"))
    deliver(factories.admin_decision("adm-45", Duration="2700", DurationRequested="2700"))
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    assert "<dt>Duration requested</dt><dd>45 minutes</dd>" in page
    assert "<dt>Duration</dt><dd>45 minutes</dd>" in page
    assert "2700" not in page[:page.index('id="notes"')]


def test_application_ticket_names_the_computer_group_with_its_id(as_approver, make_ticket):
    task = make_ticket(factories.application_request(ComputerGroup="Lisbon laptops"))
    page = text_of(as_approver.get(f"/tickets/{task.number}"))
    assert "<dt>Host</dt><dd>LT-LIS-0142</dd>" in page
    assert "<dt>Computer group</dt><dd>Lisbon laptops (7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098)</dd>" in page


def test_a_computer_group_without_a_name_shows_its_id(as_approver, application_ticket):
    page = text_of(as_approver.get(f"/tickets/{application_ticket.number}"))
    assert "<dt>Computer group</dt><dd>7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098</dd>" in page


# --- Forms only where a decision is possible --------------------------------------------


def test_a_decided_ticket_shows_decision_who_when_and_reason_without_a_form(as_approver, admin_ticket, fake_epm):
    as_approver.post(f"/tickets/{admin_ticket.number}/deny", {"reason": "No change ticket"})
    decision = Decision.get()
    page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}"))
    for row in ("<dt>Decision</dt><dd>Denied</dd>", "<dt>Reason</dt><dd>No change ticket</dd>",
                "<dt>Decided by</dt><dd>jchen</dd>", f"<dt>Decided at</dt><dd>{timestamp(decision.decided_at)}</dd>"):
        assert row in page
    assert f"/tickets/{admin_ticket.number}/approve" not in page
    assert f"/tickets/{admin_ticket.number}/deny" not in page
    assert contract.MSG_FINAL in page


# --- Context for the decision ----------------------------------------------------------


def test_earlier_requests_for_the_same_application_are_linked_with_their_outcome(as_approver, make_ticket, deliver):
    earlier = make_ticket(factories.application_request(request_id="app-earlier"), age=timedelta(days=2))
    deliver(factories.application_decision("app-earlier"))
    current = make_ticket(factories.application_request())
    page = text_of(as_approver.get(f"/tickets/{current.number}"))
    assert "The same application: 1 earlier request" in page
    assert "The same user (CORP\\mrivera): 1 earlier request" in page
    assert f'<a href="/tickets/{earlier.number}">{earlier.number}</a>' in page
    assert re.search(r'<span class="outcome">Approved</span> by jchen', page)
    assert "Approved: 1" in page


def test_an_earlier_request_that_expired_is_not_shown_as_awaiting_a_decision(as_approver, make_ticket):
    from app.jobs import expiry

    old = make_ticket(factories.application_request(user="CORP\\mrivera"), age=timedelta(hours=30))
    assert expiry.expire_pending() == 1
    new = make_ticket(factories.application_request(user="CORP\\mrivera"))
    page = as_approver.get(f"/tickets/{new.number}").get_data(as_text=True)
    earlier = re.search(rf'{old.number}.*?<span class="outcome">([^<]*)</span>', page, re.S)
    assert earlier is not None
    assert earlier.group(1) != "Awaiting decision"
    assert earlier.group(1) == "Expired"  # the word the ticket list shows for it
    assert "Awaiting decision: 1" not in page


def test_an_earlier_request_that_expired_after_epm_refused_its_decision_is_shown_as_expired(
        as_approver, make_ticket, approver):
    from app.db import write_transaction
    from app.jobs import expiry
    from app.tickets import outcome

    old = make_ticket(factories.application_request(user="CORP\\mrivera"), age=timedelta(hours=30))
    with write_transaction():  # as the delivery records EPM's refusal: the ticket can be decided again
        Decision.create(task=old, decision=contract.DECISION_APPROVED, reason="ok", duration_unit="once",
                        decided_by=approver.username, ticket_url="https://broker.example/t",
                        status=contract.DELIVERY_FAILED)
        outcome.refresh(old)
    assert expiry.expire_pending() == 1  # nobody decided it again in time
    new = make_ticket(factories.application_request(user="CORP\\mrivera"))
    page = as_approver.get(f"/tickets/{new.number}").get_data(as_text=True)
    earlier = re.search(rf'{old.number}.*?<span class="outcome">([^<]*)</span>([^<]*)</li>', page, re.S)
    assert earlier is not None
    assert (earlier.group(1), earlier.group(2).strip()) == ("Expired", "")  # as the ticket list says, by nobody
    assert "Failed to send" not in page


def test_more_earlier_requests_than_are_counted_say_so(as_approver, make_ticket, monkeypatch):
    from app.tickets import context

    monkeypatch.setattr(context, "SCANNED", 2)
    for days_ago in (3, 2, 1):
        make_ticket(factories.application_request(), age=timedelta(days=days_ago))
    page = text_of(as_approver.get(f"/tickets/{make_ticket(factories.application_request()).number}"))
    assert "The same application: more than 2 earlier requests" in page
    assert "The latest 2: Awaiting decision: 2" in page


def test_a_first_request_shows_no_earlier_requests(as_approver, application_ticket):
    assert "Earlier requests" not in text_of(as_approver.get(f"/tickets/{application_ticket.number}"))


def test_repeated_approvals_suggest_an_epm_policy(as_approver, make_ticket, deliver, app):
    app.extensions["settings"] = replace(app.extensions["settings"], policy_suggestion_approvals=2)
    for days_ago in (1, 2):
        task = make_ticket(factories.application_request(), age=timedelta(days=days_ago))
        made = f"{utcnow() - timedelta(days=days_ago):%Y-%m-%dT%H:%M:%SZ}"  # EPM's approval, `days_ago` days back
        assert deliver(factories.application_decision(task.request_id, DecisionTime=made)).status_code == 200
    current = make_ticket(factories.application_request())
    page = text_of(as_approver.get(f"/tickets/{current.number}"))
    assert "Approved 2 times in the last 30 days." in page
    assert "Consider an EPM policy that allows this application from Example Networks Inc. (Example VPN Client)" in page
    suggestion = page[page.index('class="notice policy-suggestion"'):page.index('id="same-application"')]
    for row in ("<dt>Publisher</dt><dd>Example Networks Inc.</dd>", "<dt>Product name</dt><dd>Example VPN Client</dd>",
                "<dt>SHA-256</dt><dd>9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08</dd>",
                "<dt>Application group that asks for approval today</dt><dd>Installers - Approval Required</dd>"):
        assert row in suggestion


def test_an_admin_ticket_names_its_computer_when_epms_record_gave_a_host_name(as_approver, admin_ticket):
    record = factories.epm_api_record("admin_access_request_v2_single", admin_ticket.request_id,
                                      hostName="WS-FIN-0042")[0]
    AdminTicket.update(epm_record=record, epm_checked_at=utcnow()).where(AdminTicket.task == admin_ticket).execute()
    page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}"))
    assert "<dt>Computer</dt><dd>WS-FIN-0042 (5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d)</dd>" in page


def test_an_admin_ticket_without_a_host_name_shows_the_computer_id(as_approver, admin_ticket):
    page = text_of(as_approver.get(f"/tickets/{admin_ticket.number}"))
    assert "<dt>Computer ID</dt><dd>5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d</dd>" in page
