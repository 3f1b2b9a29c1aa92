"""Real Chromium on the ticket page: a decided ticket shows its decision and no form, a stale form
is refused with a message, durations read as words, times show in the viewer's zone with UTC on
hover, and earlier requests for the same application and user sit beside the decision."""
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from app import contract
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.web import labels
from tests import factories
from tests.browser.layout import fits
from tests.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

LAPTOP = {"width": 1280, "height": 860}
PHONE = {"width": 375, "height": 812}
ZONE = "America/New_York"
APPROVE_APP = labels.ACTION_LABELS[(contract.DECISION_APPROVED, contract.KIND_APPLICATION)]
DENY_ADMIN = labels.ACTION_LABELS[(contract.DECISION_DENIED, contract.KIND_ADMIN)]
APPROVE_ADMIN = labels.ACTION_LABELS[(contract.DECISION_APPROVED, contract.KIND_ADMIN)]


@pytest.fixture
def broker(app, database_url, tmp_path):
    """gunicorn serving the broker with an approver; two approvals in 30 days suggest a policy."""
    factories.account("jchen", contract.ROLE_USER)
    factories.account("epm", contract.ROLE_API)
    config = tmp_path / "config.toml"
    config.write_text("[tickets]\npolicy_suggestion_approvals = 2\n")
    with LiveServer(database_url, workers=2, env={"JITBROKER_CONFIG": str(config)}) as server:
        yield server


@pytest.fixture
def epm(broker):
    with FakeEpm(broker_url=broker.url, webhook_user="epm", webhook_password=factories.PASSWORD,
                 auto_finalize=True, strict=True) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id,
                              "client_secret": fake.client_secret})
        yield fake


def signed_in(browser, broker, **context_options):
    """A page in a fresh browser context (its own cookies, zone, JavaScript), signed in as jchen."""
    context = browser.new_context(**{"viewport": LAPTOP, "locale": "en-US", **context_options})
    page = context.new_page()
    page.goto(f"{broker.url}/tickets")
    page.get_by_label("User name").fill("jchen")
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    return page


def test_a_decided_ticket_shows_its_decision_and_a_stale_form_is_refused(broker, epm, browser):
    epm.fire_admin_request(DurationRequested="2700")
    stale = signed_in(browser, broker)
    stale.goto(f"{broker.url}/tickets/INC0010001")
    details = stale.locator(".details").first
    expect(details).to_contain_text("45 minutes")
    expect(details).not_to_contain_text("2700")
    stale.get_by_role("link", name=APPROVE_ADMIN).click()
    expect(stale.locator(".requested-duration")).to_have_text("Requested duration: 45 minutes")

    # Another tab denies first.
    other = stale.context.new_page()
    other.goto(f"{broker.url}/tickets/INC0010001/deny")
    other.get_by_label("Reason").fill("No change ticket for this")
    other.get_by_role("button", name=DENY_ADMIN).click()
    expect(other.locator(".flash.ok")).to_contain_text("Delivered to EPM")

    stale.get_by_label("Reason").fill("Printer driver install")
    stale.get_by_role("button", name=APPROVE_ADMIN).click()
    expect(stale.locator("#form-message")).to_have_text(contract.MSG_FINAL)
    expect(stale.locator("form.decision-form")).to_have_count(0)
    assert epm.received_count == 1

    stale.get_by_role("link", name="Open INC0010001 to see its decision").click()
    panel = stale.locator(".decision-panel")
    broker_decision = panel.locator("dl").first
    for text in ("Denied", "No change ticket for this", "jchen", "Decided at"):
        expect(broker_decision).to_contain_text(text)
    expect(panel.locator(".notice").first).to_have_text(contract.MSG_FINAL)
    expect(stale.get_by_role("link", name=APPROVE_ADMIN)).to_have_count(0)
    expect(stale.get_by_role("link", name=DENY_ADMIN)).to_have_count(0)


def test_times_read_in_the_viewers_zone_with_utc_on_hover(broker, epm, browser):
    epm.fire_admin_request()
    page = signed_in(browser, broker, timezone_id=ZONE)
    page.goto(f"{broker.url}/tickets/INC0010001")
    request_time = page.locator(".details div", has_text="Request time").locator("time")
    moment = datetime.fromisoformat(request_time.get_attribute("datetime").replace("Z", "+00:00"))
    local = moment.astimezone(ZoneInfo(ZONE))
    expect(request_time).to_have_text(f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}")
    expect(request_time).to_have_attribute("title", f"{moment:%Y-%m-%d %H:%M:%S} UTC")

    # Without JavaScript the same time reads in UTC.
    plain = signed_in(browser, broker, timezone_id=ZONE, java_script_enabled=False)
    plain.goto(f"{broker.url}/tickets/INC0010001")
    expect(plain.locator(".details div", has_text="Request time").locator("time")).to_have_text(
        f"{moment:%Y-%m-%d %H:%M:%S} UTC")


def approve_once(page, broker, number):
    page.goto(f"{broker.url}/tickets/{number}/approve")
    page.get_by_label("Reason").fill("Lisbon VPN rollout")
    page.locator("input[name=duration_unit][value=once]").check()
    page.get_by_role("button", name=APPROVE_APP).click()
    expect(page.locator(".flash.ok")).to_contain_text("Delivered to EPM")


def test_earlier_requests_sit_beside_the_decision_and_repeated_approvals_suggest_a_policy(broker, epm, browser):
    for _ in range(3):
        epm.fire_application_request()
    epm.fire_admin_request(UserName="CORP\\mrivera")
    page = signed_in(browser, broker, viewport=PHONE)
    approve_once(page, broker, "INC0010001")
    approve_once(page, broker, "INC0010002")

    page.goto(f"{broker.url}/tickets/INC0010003")
    context = page.locator(".context-panel")
    expect(context.get_by_role("heading", name="The same application: 2 earlier requests")).to_be_visible()
    expect(context.locator("#same-application")).to_contain_text("Approved: 2")
    expect(context.locator("#same-application li").first).to_contain_text("Approved by jchen")
    expect(context.locator(".policy-suggestion")).to_contain_text("Approved 2 times in the last 30 days.")
    expect(context.locator(".policy-suggestion")).to_contain_text("Consider an EPM policy")
    assert fits(page)

    earlier = context.locator("#same-application").get_by_role("link", name="INC0010001")
    earlier.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="INC0010001 Application Access: Example VPN Client")).to_be_visible()
    expect(page.locator(".context-panel")).to_have_count(0)

    # The admin request came later from the same user: its page counts the three application requests.
    page.goto(f"{broker.url}/tickets/INC0010004")
    expect(page.get_by_role("heading", name="The same user (CORP\\mrivera): 3 earlier requests")).to_be_visible()
    expect(page.locator("#same-user")).to_contain_text(contract.DECISION_APPROVED)
    expect(page.locator("#same-user")).to_contain_text("Awaiting decision")
    assert fits(page)


def test_a_closed_ticket_offers_no_decision_and_says_why(broker, epm, browser):
    epm.fire_admin_request()
    page = signed_in(browser, broker, viewport=PHONE)
    page.goto(f"{broker.url}/tickets/INC0010001/approve")
    expect(page.locator(".requested-duration")).to_have_text("Requested duration: 30 minutes")
    assert fits(page)

    page.goto(f"{broker.url}/tickets/INC0010001")
    page.get_by_label("Set the state").select_option("Closed")
    page.get_by_role("button", name="Change state").press("Enter")
    expect(page.locator(".ticket-head .state")).to_have_text("Closed")
    expect(page.locator(".decision-panel .notice").first).to_have_text(contract.MSG_INACTIVE)
    expect(page.get_by_role("link", name=APPROVE_ADMIN)).to_have_count(0)
    assert fits(page)
    assert epm.received_count == 0
