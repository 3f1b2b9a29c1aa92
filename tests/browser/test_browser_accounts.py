"""Real Chromium against a real gunicorn: a person changes an admin-set password, enrols a TOTP app and signs
in with its code, from the keyboard where people type; each of these pages passes axe-core."""
import html
import re

import pyotp
import pytest
from playwright.sync_api import expect

from app import contract
from app.auth import two_factor
from app.models import Account
from tests import factories
from tests.browser.test_browser_accessibility import check, report, sign_in
from tests.browser.test_browser_approver import LAPTOP
from tests.live import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

PERSON = "mnovak"
NEW_PASSWORD = "my-own-long-password"


@pytest.fixture
def broker(app, database_url):
    factories.account(PERSON, contract.ROLE_USER)
    Account.change(Account.by_username(PERSON).id, must_change_password=True)
    with LiveServer(database_url, workers=2) as server:
        yield server


def test_a_person_changes_an_admin_set_password_then_signs_in_with_a_totp_code(broker, browser, axe_violations):
    page = browser.new_page(viewport=LAPTOP)
    found = {}

    sign_in(page, broker, PERSON)
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    expect(page.get_by_text("An admin set your password")).to_be_visible()
    check(page, axe_violations, found, "change password, admin-set")
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()  # nowhere else to go

    page.get_by_label("Current password").fill(factories.PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD + "!")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_contain_text("two new passwords differ")
    check(page, axe_violations, found, "change password, refused")
    page.get_by_label("Current password").fill(factories.PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_label("New password again").press("Enter")
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Your password is changed")

    page.get_by_role("link", name="Account").click()
    page.get_by_role("link", name="Two-factor sign-in").click()
    expect(page.get_by_role("img", name="QR code of the key below")).to_be_visible()
    check(page, axe_violations, found, "two-factor enrolment")
    secret = page.locator("code.secret").inner_text()
    page.get_by_label("Current password").fill("not-my-password")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("alert")).to_contain_text("The current password is not right")
    check(page, axe_violations, found, "two-factor enrolment, refused")
    assert page.locator("code.secret").inner_text() == secret
    page.get_by_label("Current password").fill(NEW_PASSWORD)
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.get_by_text("Your other sessions have ended")).to_be_visible()
    expect(page.locator("ul.recovery-codes li")).to_have_count(two_factor.RECOVERY_CODES)
    check(page, axe_violations, found, "recovery codes shown once")
    recovery = page.locator("ul.recovery-codes li").first.inner_text()

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, broker, PERSON, NEW_PASSWORD)
    expect(page.get_by_role("heading", name="Sign-in code")).to_be_visible()
    check(page, axe_violations, found, "sign-in code")
    page.get_by_label("Code").fill("000000")
    page.get_by_label("Code").press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    check(page, axe_violations, found, "sign-in code, refused")
    page.get_by_label("Code").fill(html.unescape(recovery))
    page.get_by_label("Code").press("Enter")
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    expect(page.get_by_text(re.compile(r"recovery code; 9 are left"))).to_be_visible()
    check(page, axe_violations, found, "signed in with a recovery code")

    assert not found, report(found)


def test_sign_out_in_a_tab_opened_before_a_password_change_asks_once_more_and_signs_out(broker, browser,
                                                                                        axe_violations):
    context = browser.new_context(viewport=LAPTOP)
    tab_a, tab_b = context.new_page(), context.new_page()
    found = {}
    sign_in(tab_a, broker, PERSON)
    expect(tab_a.get_by_role("heading", name="Change password")).to_be_visible()
    tab_b.goto(f"{broker.url}/account/password")
    tab_b.get_by_label("Current password").fill(factories.PASSWORD)
    tab_b.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    tab_b.get_by_label("New password again").fill(NEW_PASSWORD)
    tab_b.get_by_role("button", name="Change password").click()
    expect(tab_b.get_by_role("heading", name="Tickets")).to_be_visible()

    tab_a.get_by_role("button", name="Sign out").click()
    expect(tab_a.get_by_role("heading", name="Sign out?")).to_be_visible()
    check(tab_a, axe_violations, found, "sign out from a page opened before a password change")
    tab_b.reload()
    expect(tab_b.get_by_role("heading", name="Tickets")).to_be_visible()  # nothing ended yet
    tab_a.locator("main").get_by_role("button", name="Sign out").click()
    expect(tab_a.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(tab_a.get_by_text("You are signed out.")).to_be_visible()
    tab_b.goto(f"{broker.url}/tickets")
    expect(tab_b.get_by_role("heading", name="Sign in")).to_be_visible()
    assert not found, report(found)
