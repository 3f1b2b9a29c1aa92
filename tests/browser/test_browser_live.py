"""Real Chromium against a real gunicorn and the fake EPM: the list and the ticket page follow changes
within 5 seconds without a reload, text being typed stays, a form that can no longer be sent gives way to
the decision, a page whose session ended goes to sign-in, and the Content-Security-Policy holds."""
import re

import pytest
from playwright.sync_api import expect

from app import contract
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.web import labels
from tests import factories
from tests.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LAPTOP = {"width": 1280, "height": 860}
LIVE = 5_000  # milliseconds: what "within 5 seconds" allows
APPROVE_APP = labels.ACTION_LABELS[(contract.DECISION_APPROVED, contract.KIND_APPLICATION)]
DENY_APP = labels.ACTION_LABELS[(contract.DECISION_DENIED, contract.KIND_APPLICATION)]


@pytest.fixture
def broker(app, database_url):
    """gunicorn serving the broker with two approvers and the account EPM delivers with."""
    for name in ("jchen", "mlopez"):
        factories.account(name, contract.ROLE_USER)
    factories.account("epm", contract.ROLE_API)
    with LiveServer(database_url, workers=2) as server:
        yield server


@pytest.fixture
def epm(broker):
    with FakeEpm(broker_url=broker.url, webhook_user="epm", webhook_password=factories.PASSWORD,
                 auto_finalize=True, strict=True) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id,
                              "client_secret": fake.client_secret})
        yield fake


class Tab:
    """A page in its own browser context (its own session), signed in, noting every console error."""

    def __init__(self, browser, broker, username="jchen"):
        self.context = browser.new_context(viewport=LAPTOP, locale="en-US", timezone_id="America/New_York")
        self.page = self.context.new_page()
        self.errors = []
        # Chromium logs a refused script, style or eval to the console; the event names the directive too.
        self.context.add_init_script(
            "document.addEventListener('securitypolicyviolation',"
            " function (e) { console.error('CSP violation: ' + e.violatedDirective); });")
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("response", self._response)
        self.page.goto(f"{broker.url}/tickets")
        self.page.get_by_label("User name").fill(username)
        self.page.get_by_label("Password").fill(factories.PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Tickets")).to_be_visible()

    def _console(self, message):
        # A failed load is logged without its address: _response notes it with one.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def _response(self, response):
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.errors.append(f"{response.status} {response.url}")


def row(page, number):
    return page.locator("table.tickets tbody tr").filter(has=page.get_by_role("link", name=number, exact=True))


def epm_decides(epm, request_id):
    """EPM's update event for an application request decided in EPM itself (no broker decision)."""
    event = factories.application_decision(request_id)
    event["TenantId"] = epm.tenant_id
    epm.send_event(event)


def test_a_new_ticket_appears_in_the_open_list(broker, epm, browser):
    first_request = epm.fire_application_request(productName="Already here")
    tab = Tab(browser, broker)
    expect(row(tab.page, "INC0010001")).to_be_visible()
    epm.fire_application_request(productName="Arrived while looking")
    expect(row(tab.page, "INC0010002")).to_contain_text("Arrived while looking", timeout=LIVE)
    expect(row(tab.page, "INC0010002")).to_contain_text("Awaiting decision")
    # EPM deciding the first one takes it off "Awaiting decision" just as quickly.
    epm_decides(epm, first_request)
    expect(row(tab.page, "INC0010001")).to_have_count(0, timeout=LIVE)
    assert tab.errors == []


def test_the_ticket_page_shows_epms_update_while_typed_text_stays(broker, epm, browser):
    request_id = epm.fire_application_request()
    tab = Tab(browser, broker)
    page = tab.page
    page.goto(f"{broker.url}/tickets/INC0010001")
    panel = page.locator(".decision-panel")
    expect(panel.get_by_role("link", name=APPROVE_APP)).to_be_visible()
    note = page.get_by_label("Add a work note")
    note.click()
    page.keyboard.type("Asked the user why they ne")

    epm_decides(epm, request_id)
    expect(panel.locator(".notice").first).to_have_text(contract.MSG_FINAL, timeout=LIVE)
    expect(panel.get_by_role("link", name=APPROVE_APP)).to_have_count(0)
    expect(panel).not_to_contain_text("EPM has not reported a final decision yet")
    expect(note).to_have_value("Asked the user why they ne")
    # The times in the new parts read in the viewer's zone, as the page's own do.
    expect(panel.locator("time.local-time").last).to_have_attribute("data-local", re.compile(r".+"))
    # The text box kept the focus: typing goes on where it stopped.
    page.keyboard.type("ed it")
    expect(note).to_have_value("Asked the user why they need it")
    assert tab.errors == []


def test_a_decision_made_in_another_browser_replaces_the_open_form(broker, epm, browser):
    epm.fire_application_request()
    first = Tab(browser, broker)
    first.page.goto(f"{broker.url}/tickets/INC0010001/approve")
    first.page.get_by_label("Reason").fill("Half a reas")

    other = Tab(browser, broker, "mlopez")
    other.page.goto(f"{broker.url}/tickets/INC0010001/deny")
    other.page.get_by_label("Reason").fill("Not on the allowed list")
    other.page.get_by_role("button", name=DENY_APP).click()
    expect(other.page.locator(".flash.ok")).to_contain_text("Delivered to EPM")

    page = first.page
    expect(page.locator("#form-message")).to_have_text(contract.MSG_FINAL, timeout=LIVE)
    expect(page.locator("form.decision-form")).to_have_count(0)
    for text in ("Denied", "Not on the allowed list", "mlopez"):
        expect(page.locator("#decision-form-area")).to_contain_text(text)
    page.get_by_role("link", name="Open INC0010001 to see its decision").click()
    expect(page.locator(".decision-panel")).to_contain_text("Not on the allowed list")
    assert epm.received_count == 1
    assert first.errors == [] and other.errors == []


def test_a_page_whose_session_ended_shows_the_sign_in(broker, epm, browser):
    epm.fire_application_request()
    tab = Tab(browser, broker)
    tab.page.goto(f"{broker.url}/tickets/INC0010001")
    tab.context.clear_cookies()
    expect(tab.page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=LIVE)
    assert "next=/tickets/INC0010001" in tab.page.url
    tab.page.get_by_label("User name").fill("jchen")
    tab.page.get_by_label("Password").fill(factories.PASSWORD)
    tab.page.get_by_role("button", name="Sign in").click()
    expect(tab.page.get_by_role("heading", name="INC0010001")).to_be_visible()
