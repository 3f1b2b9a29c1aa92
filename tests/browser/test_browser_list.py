"""Real Chromium against a real gunicorn and the fake EPM: the list an approver lands on.

It opens on what awaits a decision, with the count in the navigation; decided and expired
requests are one click away and say what became of them in words, beside the ticket state."""
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app import contract
from app.jobs import expiry
from app.models import JIT_MODELS, Decision, Task, utcnow
from tests.browser.layout import fits
from tests.browser.test_browser_approver import LAPTOP, broker, epm, screenshot, sign_in  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PHONE_375 = {"width": 375, "height": 812}


def ticket(number):
    return Task.get(Task.number == number)


def approved_by_epm(task):
    Decision.create(task=task, decision=contract.DECISION_APPROVED, reason="Rollout", decided_by="jchen",
                    ticket_url="x", status=contract.DELIVERY_DELIVERED, delivered_at=utcnow())
    model = JIT_MODELS[task.kind]
    model.update(decision_final=True, final_decision=contract.DECISION_APPROVED).where(model.task == task).execute()


def three_requests(epm):
    """INC0010001 approved, INC0010002 left undecided two days (expired), INC0010003 awaiting a decision."""
    for _ in range(3):
        epm.fire_application_request()
    approved_by_epm(ticket("INC0010001"))
    Task.update(opened_at=utcnow() - timedelta(days=2)).where(Task.number == "INC0010002").execute()
    assert expiry.expire_pending() == 1


def row(page, number):
    return page.locator("table.tickets tbody tr").filter(has=page.get_by_role("link", name=number, exact=True))


def test_approver_lands_on_awaiting_decision_and_finds_decided_tickets_one_click_away(broker, epm, browser):
    three_requests(epm)
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, broker)

    rows = page.locator("table.tickets tbody tr")
    expect(rows).to_have_count(1)
    expect(row(page, "INC0010003")).to_contain_text("Awaiting decision")
    expect(page.get_by_role("navigation", name="Main")).to_contain_text("Awaiting decision 1")
    expect(page.get_by_label("Decision")).to_have_value("awaiting")
    screenshot(page, "list-awaiting.png")

    # From the keyboard: the link to every ticket.
    page.get_by_role("navigation", name="Tickets to show").get_by_role("link", name="All tickets").focus()
    page.keyboard.press("Enter")
    expect(rows).to_have_count(3)
    expect(row(page, "INC0010001")).to_contain_text("Approved")
    expect(row(page, "INC0010002")).to_contain_text("Expired")
    expect(row(page, "INC0010003")).to_contain_text("Awaiting decision")
    expect(row(page, "INC0010003").locator(".state")).to_have_text("New")

    # The filter's own choice, and back by the navigation's count.
    page.get_by_label("Decision").select_option("expired")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(row(page, "INC0010002")).to_be_visible()
    page.get_by_role("link", name="Awaiting decision 1").click()
    expect(rows).to_have_count(1)
    expect(row(page, "INC0010003")).to_be_visible()


def test_expired_ticket_says_why_and_refuses_a_decision(broker, epm, browser):
    three_requests(epm)
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, broker)
    page.goto(f"{broker.url}/tickets/INC0010002")
    expect(page.locator("body")).to_contain_text("Expired: no decision within 24 hours of the request.")
    # A decision form opened before the request expired, sent now: its poll, which would replace the form with
    # the expiry (test_an_expired_request_offers_no_decision_buttons), has not answered yet.
    page.route("**/tickets/INC0010002/approve/live", lambda route: route.abort())
    page.goto(f"{broker.url}/tickets/INC0010002/approve")
    page.get_by_label("Reason").fill("Too late")
    page.locator("input[name=duration_unit][value=once]").check()
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("body")).to_contain_text("This request expired without a decision")
    assert Decision.select().where(Decision.task == ticket("INC0010002")).count() == 0


@pytest.mark.parametrize("view", ["", "?decision=all"])
def test_list_with_decision_status_does_not_scroll_sideways_on_a_phone(broker, epm, browser, view):
    three_requests(epm)
    page = browser.new_page(viewport=PHONE_375)
    sign_in(page, broker)
    page.goto(f"{broker.url}/tickets{view}")
    expect(page.locator(".decision-status").first).to_be_visible()
    assert fits(page)
