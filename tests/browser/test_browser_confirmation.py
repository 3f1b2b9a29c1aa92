"""Real Chromium against a real gunicorn: a destructive action confirmed from the keyboard only, and the
"Elevated now" page fed by the fake EPM's console (a session running, another ended early)."""
import pytest
from playwright.sync_api import expect

from app import contract
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.models import Account, AdminTicket, Task
from tests import factories
from tests.browser.layout import fits
from tests.browser.test_browser_approver import LAPTOP, PHONE, reload_until
from tests.live import LiveServer
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN = "root"
APPROVER = "jchen"
TARGET = "alice"


@pytest.fixture
def broker(app, database_url, api_account):
    """gunicorn serving the broker, with an admin, an approver, an account to deactivate and EPM's account."""
    factories.account(ADMIN, contract.ROLE_ADMIN)
    factories.account(APPROVER, contract.ROLE_USER)
    factories.account(TARGET, contract.ROLE_USER)
    with LiveServer(database_url, workers=2) as server:
        yield server


@pytest.fixture
def epm(broker, api_account):
    """A fake EPM tenant whose console decides, revokes and ends sessions, sending the webhooks EPM would."""
    with FakeEpm(broker_url=broker.url, webhook_user=api_account.username,
                 webhook_password=factories.PASSWORD) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake


def sign_in_with_the_keyboard(page, broker, username):
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    tab_to(page, page.get_by_label("User name"))
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(factories.PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()


def is_focused(locator):
    return locator.evaluate("element => element === document.activeElement")


def tab_to(page, locator, presses=80):
    """Press Tab until `locator` has the focus, as a keyboard user walks a page."""
    for _ in range(presses):
        if is_focused(locator):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{locator} never got the focus in {presses} presses of Tab")


def open_from_main_navigation(page, link):
    """Follow a main navigation link from the keyboard."""
    tab_to(page, page.get_by_role("navigation", name="Main").get_by_role("link", name=link))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=link, exact=True)).to_be_visible()


def status_of(page, username):
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=username, exact=True)).locator(
        "td[data-label=Status]")


def test_an_admin_deactivates_an_account_from_the_keyboard_after_cancelling_once(broker, browser):
    target = Account.by_username(TARGET)
    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, ADMIN)
    open_from_main_navigation(page, "Users")
    deactivate = page.get_by_role("button", name=f"Deactivate {TARGET}")

    # The first time, the admin thinks better of it: the confirmation starts on Cancel.
    tab_to(page, deactivate)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=f"Deactivate {TARGET}?")).to_be_visible()
    expect(page.get_by_text("They can no longer sign in, decide requests or call the API")).to_be_visible()
    cancel = page.get_by_role("link", name="Cancel")
    expect(cancel).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Users")).to_be_visible()
    expect(status_of(page, TARGET)).to_have_text("Active")
    assert Account.get_by_id(target.id).active

    # Then for real: back one step from Cancel to the button that names the action.
    tab_to(page, deactivate)
    page.keyboard.press("Enter")
    expect(cancel).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("button", name=f"Deactivate {TARGET}")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.get_by_role("status").filter(has_text=f"{TARGET} is deactivated.")).to_be_visible()
    expect(status_of(page, TARGET)).to_have_text("Deactivated")
    assert not Account.get_by_id(target.id).active


def end_time_of(request_id):
    jit = AdminTicket.get_or_none(AdminTicket.request_id == request_id)
    return jit.final_end_time if jit is not None else None


def test_elevated_now_shows_a_running_session_and_not_an_ended_one(broker, epm, browser):
    running = epm.fire_admin_request(UserName="CORP\\akowalski", ComputerId="WS-RUNNING-01",
                                     DurationRequested="3600")
    ended = epm.fire_admin_request(UserName="CORP\\tlee", ComputerId="WS-ENDED-02", DurationRequested="3600")
    epm.decide(running, contract.DECISION_APPROVED, by="secops-lead", notify=True)
    epm.decide(ended, contract.DECISION_APPROVED, by="secops-lead", notify=True)
    planned_end = end_time_of(ended)
    epm.end_session(ended)
    wait_until(lambda: end_time_of(ended) not in (None, planned_end), timeout=20, message="the early end to arrive")
    running_ticket = Task.get(Task.request_id == running).number

    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, APPROVER)
    open_from_main_navigation(page, "Elevated now")

    rows = page.locator("table.elevated tbody tr")
    reload_until(page, page.locator("table.elevated"), "WS-RUNNING-01")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("CORP\\akowalski")
    expect(rows.first).to_contain_text("secops-lead")
    expect(rows.first.locator("td[data-label='Time left']")).to_contain_text("min")
    expect(page.locator("main")).not_to_contain_text("WS-ENDED-02")

    page.set_viewport_size(PHONE)
    assert fits(page)
    rows.first.get_by_role("link", name=running_ticket).click()
    expect(page.get_by_role("heading", name=running_ticket)).to_be_visible()

    planned_end = end_time_of(running)
    epm.end_session(running)
    wait_until(lambda: end_time_of(running) != planned_end, timeout=20, message="the second early end to arrive")
    page.goto(f"{broker.url}/elevated")
    expect(page.get_by_text("Nobody is elevated now")).to_be_visible()
