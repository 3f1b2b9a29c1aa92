"""Live pages: the list's rows and the ticket page's parts polled with ETag/304, the decision form told
when the ticket was decided meanwhile, and polling that neither keeps an idle session alive nor shows a
sign-in form inside a page."""
import time
from datetime import timedelta

import pytest

from app import contract
from app.auth import sessions
from app.jobs import expiry
from app.tickets.decidable import MSG_EXPIRED
from app.web import tickets as ticket_views
from tests import factories

POLL = {"HX-Request": "true", sessions.BACKGROUND_HEADER: "1"}
ROWS = "/tickets/rows"


def poll(client, path, etag=None, **headers):
    extra = {"If-None-Match": etag} if etag else {}
    return client.get(path, headers={**POLL, **extra, **headers})


def etag_of(response):
    return response.headers["ETag"]


def test_the_list_carries_its_rows_etag_and_polls_the_same_filters(as_approver, make_ticket):
    make_ticket()
    page = as_approver.get("/tickets?kind=application&q=vpn").get_data(as_text=True)
    assert 'data-live hx-get="/tickets/rows?' in page
    assert "kind=application" in page and "q=vpn" in page
    assert 'hx-trigger="every 2s"' in page
    rows = poll(as_approver, ROWS + "?kind=application&q=vpn")
    assert f"data-etag='{etag_of(rows)}'" in page


def test_unchanged_rows_answer_304_with_no_body(as_approver, make_ticket):
    make_ticket()
    first = poll(as_approver, ROWS)
    assert first.status_code == 200
    assert first.headers["Cache-Control"] == "no-store"
    again = poll(as_approver, ROWS, etag_of(first))
    assert again.status_code == 304
    assert again.get_data() == b""
    assert etag_of(again) == etag_of(first)


def test_a_new_ticket_changes_the_rows(as_approver, make_ticket):
    make_ticket()
    first = poll(as_approver, ROWS)
    task = make_ticket(factories.application_request(productName="Brand new tool"))
    changed = poll(as_approver, ROWS, etag_of(first))
    assert changed.status_code == 200
    body = changed.get_data(as_text=True)
    assert task.number in body and "Brand new tool" in body
    assert "<html" not in body and "<nav class=\"views\"" not in body
    assert etag_of(changed) != etag_of(first)


def test_an_epm_decision_changes_the_rows_status(as_approver, make_ticket, deliver):
    task = make_ticket()
    first = poll(as_approver, ROWS + "?decision=all")
    assert deliver(factories.application_decision(task.request_id)).status_code == 200
    changed = poll(as_approver, ROWS + "?decision=all", etag_of(first))
    assert changed.status_code == 200
    assert "Approved" in changed.get_data(as_text=True)


def test_the_rows_keep_the_cursor(as_approver, make_ticket, monkeypatch):
    monkeypatch.setattr(ticket_views.listing, "PAGE_SIZE", 1)
    older, newer = make_ticket(), make_ticket()
    first_page = as_approver.get("/tickets").get_data(as_text=True)
    assert newer.number in first_page and older.number not in first_page
    cursor = first_page.split('rel="next"')[0].rsplit("after=", 1)[1].split('"')[0].split("&")[0]
    second = poll(as_approver, f"{ROWS}?after={cursor}").get_data(as_text=True)
    assert older.number in second and newer.number not in second


def test_the_304_path_renders_no_template(as_approver, make_ticket, monkeypatch):
    make_ticket()
    etag = etag_of(poll(as_approver, ROWS))
    rendered = []
    monkeypatch.setattr(ticket_views, "render_template", lambda *args, **kwargs: rendered.append(args) or "")
    assert poll(as_approver, ROWS, etag).status_code == 304
    assert rendered == []


def test_the_ticket_page_polls_its_parts_and_an_unchanged_ticket_answers_304(as_approver, make_ticket):
    task = make_ticket()
    page = as_approver.get(f"/tickets/{task.number}").get_data(as_text=True)
    assert f'hx-get="/tickets/{task.number}/live"' in page
    etag = page.split("data-etag='", 1)[1].split("'", 1)[0]
    unchanged = poll(as_approver, f"/tickets/{task.number}/live", etag)
    assert unchanged.status_code == 304 and unchanged.get_data() == b""


def test_an_epm_update_sends_the_parts_and_never_a_form_with_typed_text(as_approver, make_ticket, deliver):
    task = make_ticket()
    etag = etag_of(poll(as_approver, f"/tickets/{task.number}/live"))
    assert deliver(factories.application_decision(task.request_id)).status_code == 200
    changed = poll(as_approver, f"/tickets/{task.number}/live", etag)
    assert changed.status_code == 200
    body = changed.get_data(as_text=True)
    for part in ('id="ticket-state"', 'id="decision-live"', 'id="ticket-rows"', 'id="note-list" reversed',
                 'id="history"'):
        assert f'{part} hx-swap-oob="true"' in body, part
    assert "EPM has not reported a final decision yet" not in body
    assert contract.MSG_FINAL in body
    assert "<textarea" not in body and 'name="state"' not in body


def test_a_work_note_changes_the_parts(as_approver, make_ticket):
    task = make_ticket()
    etag = etag_of(poll(as_approver, f"/tickets/{task.number}/live"))
    as_approver.post(f"/tickets/{task.number}/notes", {"work_note": "Called the user back"})
    changed = poll(as_approver, f"/tickets/{task.number}/live", etag)
    assert changed.status_code == 200
    assert "Called the user back" in changed.get_data(as_text=True)


def test_an_open_decision_form_keeps_polling_while_the_ticket_can_be_decided(as_approver, make_ticket):
    task = make_ticket()
    page = as_approver.get(f"/tickets/{task.number}/approve").get_data(as_text=True)
    assert f'hx-get="/tickets/{task.number}/approve/live"' in page
    open_answer = poll(as_approver, f"/tickets/{task.number}/approve/live")
    assert open_answer.status_code == 204
    assert poll(as_approver, f"/tickets/{task.number}/approve/live", etag_of(open_answer)).status_code == 304


def test_a_decision_made_meanwhile_replaces_the_form(as_approver, make_ticket, deliver):
    task = make_ticket()
    assert deliver(factories.application_decision(task.request_id)).status_code == 200
    answer = poll(as_approver, f"/tickets/{task.number}/deny/live")
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert 'id="decision-form-area" hx-swap-oob="true"' in body
    assert contract.MSG_FINAL in body and "EPM's finalized decision" in body
    assert "<form" not in body
    assert f"Open {task.number} to see its decision" in body
    assert poll(as_approver, f"/tickets/{task.number}/deny/live", etag_of(answer)).status_code == 304


def test_an_expired_request_offers_no_decision_buttons(as_approver, make_ticket):
    old = make_ticket(factories.application_request(), age=timedelta(hours=30))
    assert expiry.expire_pending() == 1
    page = as_approver.get(f"/tickets/{old.number}").get_data(as_text=True)
    assert f"/tickets/{old.number}/approve" not in page
    assert "This request expired without a decision" in page
    # An open form is told why it can no longer be sent, as it is for a ticket decided meanwhile.
    answer = poll(as_approver, f"/tickets/{old.number}/approve/live")
    assert answer.status_code == 200
    body = answer.get_data(as_text=True)
    assert MSG_EXPIRED in body and "<form" not in body


def test_polling_does_not_renew_the_idle_stamp(as_approver, make_ticket, monkeypatch):
    make_ticket()
    seen = as_approver.session()[sessions.SEEN]
    now = time.time()
    monkeypatch.setattr(sessions.time, "time", lambda: now + 20 * 60)
    answer = poll(as_approver, ROWS)
    assert answer.status_code == 200
    assert as_approver.session()[sessions.SEEN] == seen
    # A person's click does renew it.
    assert as_approver.get("/tickets").status_code == 200
    assert as_approver.session()[sessions.SEEN] == int(now + 20 * 60)


def test_polling_alone_lets_the_session_end(as_approver, make_ticket, monkeypatch):
    task = make_ticket()
    start = time.time()
    for minutes in (10, 20, 29):
        monkeypatch.setattr(sessions.time, "time", lambda minutes=minutes: start + minutes * 60)
        assert poll(as_approver, f"/tickets/{task.number}/live").status_code == 200, minutes
    monkeypatch.setattr(sessions.time, "time", lambda: start + 31 * 60)
    assert poll(as_approver, f"/tickets/{task.number}/live").status_code == 401


@pytest.mark.parametrize("path", [ROWS, "/tickets/INC0010001/live", "/tickets/INC0010001/approve/live"])
def test_a_poll_after_the_session_ended_sends_the_page_to_sign_in(web, path):
    answer = web.get(path, headers={**POLL, "HX-Current-URL": "http://localhost/tickets/INC0010001?x=1"})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/sign-in?next=/tickets/INC0010001?x%3D1"
    assert "<form" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("page", ["http://[broker/tickets", "http://[::1/x"])
def test_a_poll_from_a_page_address_that_cannot_be_read_goes_to_sign_in_without_coming_back(web, page):
    answer = web.get(ROWS, headers={**POLL, "HX-Current-URL": page})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"] == "/sign-in"


def test_a_page_request_after_the_session_ended_still_redirects(web):
    answer = web.get("/tickets")
    assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]


def test_every_page_loads_htmx_under_the_csp(as_approver):
    answer = as_approver.get("/tickets")
    page = answer.get_data(as_text=True)
    assert 'src="/static/vendor/htmx.min.js"' in page and 'src="/static/live.js"' in page
    assert '"allowEval":false' in page and '"allowScript":false' in page and '"includeIndicatorStyles":false' in page
    assert "unsafe-eval" not in answer.headers["Content-Security-Policy"]
    assert "<script>" not in page and "http-equiv=\"refresh\"" not in page
    script = as_approver.get("/static/vendor/htmx.min.js")
    assert script.status_code == 200
    script.close()
