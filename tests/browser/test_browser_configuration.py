"""Real Chromium against a real gunicorn and the fake EPM: the configuration page an admin fills in.

The settings are grouped in fieldsets, a wrong value is named beside its field (and in a summary
linking to it) with everything typed kept, and Test Connection answers beside its button, inside
the viewport, with the fix to try, on a laptop and on a 375 px phone.
"""
import re

import pytest
from playwright.sync_api import expect

from app import contract
from tests.browser.layout import fits
from tests.browser.test_browser_approver import LAPTOP, SCREENSHOTS, screenshot
from tests.browser.test_browser_dashboard import PHONE_375, csp_violations
from tests.browser.test_browser_ops import ADMIN, broker, epm, sign_in  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def open_configuration(page):
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Configuration").click()
    expect(page.get_by_role("heading", name="Configuration", exact=True)).to_be_visible()


def test_configuration_is_grouped_and_names_each_error_beside_its_field(broker, epm, browser):
    page = browser.new_page(viewport=LAPTOP)
    violations = csp_violations(page)
    sign_in(page, broker, ADMIN)
    open_configuration(page)

    for group, label in (("EPM connection", "PMC Service Host Name"), ("Tickets", "Ticket Type"),
                         ("Notifications", "SMTP Port"), ("Policies", "EPM Statuses Meaning Approved"),
                         ("Retention", "Keep Incoming Requests (days)")):
        expect(page.get_by_role("group", name=group, exact=True).get_by_label(label, exact=True)).to_be_visible()

    page.get_by_label("Default Assignment Group").fill("Service Desk EMEA")
    page.get_by_label("SMTP Port").fill("99999")
    page.get_by_label("Token Path", exact=True).fill("no slash")
    page.get_by_role("button", name="Save configuration").click()

    port = page.get_by_label("SMTP Port")
    expect(port).to_have_attribute("aria-invalid", "true")
    expect(port).to_have_accessible_description(re.compile("a whole number from 1 to 65535"))
    error = page.locator("#smtp_port-error")
    port_box, error_box = port.bounding_box(), error.bounding_box()
    assert 0 <= error_box["y"] - (port_box["y"] + port_box["height"]) < 40  # right under its field
    expect(page.get_by_label("Token Path", exact=True)).to_have_accessible_description(
        re.compile("a path starting with /"))
    expect(page.get_by_role("group", name=re.compile(r"^Notifications \(1 to fix\)"))).to_be_visible()
    # Nothing typed is lost.
    expect(page.get_by_label("Default Assignment Group")).to_have_value("Service Desk EMEA")
    expect(port).to_have_value("99999")

    screenshot(page, "configuration-errors.png")
    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("fix the fields marked below")
    summary.get_by_role("link", name="SMTP Port").click()
    expect(port).to_be_in_viewport()

    port.fill("587")
    page.get_by_label("Token Path", exact=True).fill(contract.EPM_TOKEN_PATH)
    page.get_by_role("button", name="Save configuration").click()
    expect(page.locator(".flash.ok")).to_have_text("Configuration saved.")
    expect(page.get_by_label("Default Assignment Group")).to_have_value("Service Desk EMEA")
    assert violations == []


def test_test_connection_answers_beside_its_button_with_the_fix_to_try(broker, epm, browser):
    for viewport in (LAPTOP, PHONE_375):
        page = browser.new_page(viewport=viewport)
        violations = csp_violations(page)
        sign_in(page, broker, ADMIN)
        open_configuration(page)
        button = page.get_by_role("button", name="Test Connection")
        button.focus()
        page.keyboard.press("Enter")
        result = page.locator("#test-result")
        expect(result).to_have_text("Connection OK")
        expect(result).to_be_in_viewport()
        expect(page.get_by_role("button", name="Test Connection")).to_be_in_viewport()
        assert fits(page)
        # Shown once: the page opened afresh has no stale result.
        open_configuration(page)
        expect(result).to_be_hidden()
        assert violations == []
        page.close()

    epm.rotate_secret("regenerated-in-epm")
    for viewport in (LAPTOP, PHONE_375):
        page = browser.new_page(viewport=viewport)
        sign_in(page, broker, ADMIN)
        open_configuration(page)
        page.get_by_role("button", name="Test Connection").click()
        result = page.get_by_role("alert").filter(has_text="Test Connection failed")
        expect(result).to_contain_text("Check the client ID and client secret")
        expect(result).to_be_in_viewport()
        assert fits(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)  # what the viewport shows, not the whole page
        page.screenshot(path=str(SCREENSHOTS / f"test-connection-{viewport['width']}.png"))
        page.close()
