"""Real Chromium against a real gunicorn and the fake EPM: the dashboard's charts.

An admin sees requests per day, decisions by outcome and time to decision drawn as
SVG charts that name and describe themselves, opens each chart's numbers as a table
from the keyboard, and the page keeps its Content-Security-Policy and fits a phone.
"""
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from app import contract
from app.models import Decision, Task
from tests.browser.layout import fits
from tests.browser.test_browser_approver import LAPTOP, screenshot
from tests.browser.test_browser_ops import ADMIN, broker, epm, open_operations_page, sign_in  # noqa: F401
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PHONE_375 = {"width": 375, "height": 812}


def csp_violations(page):
    """Collects the console's Content-Security-Policy complaints for the page's life."""
    violations = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return violations


@pytest.fixture
def decided(epm):
    """Two Application Access requests and one Admin Access request today: one approved after 10 minutes,
    one denied after 2 hours."""
    for user in ("CORP\\alee", "CORP\\bkim"):
        epm.fire_application_request(user=user)
    epm.fire_admin_request()
    wait_until(lambda: Task.select().count() == 3, timeout=20, message="three tickets")
    first, second, _ = Task.select().order_by(Task.id)
    for task, decision, after in ((first, contract.DECISION_APPROVED, timedelta(minutes=10)),
                                  (second, contract.DECISION_DENIED, timedelta(hours=2))):
        Decision.create(task=task, decision=decision, reason="seen", decided_by=ADMIN, ticket_url="",
                        status=contract.DELIVERY_DELIVERED, decided_at=task.opened_at + after)


def test_dashboard_draws_charts_with_names_descriptions_and_tables(broker, decided, browser):
    page = browser.new_page(viewport=LAPTOP)
    violations = csp_violations(page)
    sign_in(page, broker, ADMIN)
    open_operations_page(page, "Dashboard", "Operations dashboard")

    per_day = page.get_by_role("img", name="Requests per day", exact=True)
    expect(per_day).to_be_visible()
    expect(per_day).to_have_accessible_description(
        "3 requests in the last 30 days (2 Application Access, 1 Admin Access); the busiest day was "
        f"{Task.get_by_id(1).opened_at.date().isoformat()} with 3.")
    today = per_day.locator(".bar-group").last
    expect(today.locator("rect")).to_have_count(2)
    application = float(today.locator("rect.bar-application").get_attribute("height"))
    admin = float(today.locator("rect.bar-admin").get_attribute("height"))
    assert application == pytest.approx(2 * admin, abs=0.2)
    expect(today.locator("title")).to_contain_text(": 2 Application Access, 1 Admin Access")

    outcomes = page.get_by_role("img", name="Decisions by outcome", exact=True)
    expect(outcomes).to_have_accessible_description(
        "Decisions in the last 30 days: Approved 1, Denied 1, Refused by EPM 0.")
    expect(outcomes.locator("rect.bar-approved")).to_have_count(1)
    expect(outcomes.locator("rect.bar-refused")).to_have_count(0)
    decision_time = page.get_by_role("img", name="Time to decision", exact=True)
    expect(decision_time).to_have_accessible_description(re.compile(r"^2 tickets decided.*5–15 min: 1.*1–4 h: 1"))

    # Each chart's numbers, opened from the keyboard.
    table = page.locator("table.outcomes")
    expect(table).to_be_hidden()
    page.get_by_text("Decisions by outcome as a table").focus()
    page.keyboard.press("Enter")
    expect(table).to_be_visible()
    expect(table.get_by_role("row", name="Approved 1")).to_be_visible()
    expect(table.get_by_role("row", name="Denied 1")).to_be_visible()
    page.get_by_text("Time to decision as a table").focus()
    page.keyboard.press("Enter")
    expect(page.locator("table.decision-time").get_by_role("row", name="1–4 h 1")).to_be_visible()
    assert violations == []
    screenshot(page, "dashboard.png")

    phone = browser.new_page(viewport=PHONE_375)
    phone_violations = csp_violations(phone)
    sign_in(phone, broker, ADMIN)
    phone.goto(f"{broker.url}/admin/dashboard")
    for name in ("Requests per day", "Decisions by outcome", "Time to decision"):
        box = phone.get_by_role("img", name=name, exact=True).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE_375["width"], name
    phone.get_by_text("Requests per day as a table").click()
    expect(phone.locator("table.per-day")).to_be_visible()
    assert fits(phone)
    assert phone_violations == []
    screenshot(phone, "dashboard-phone.png")
