"""Real Chromium signing in through a real OpenID provider (oidc-provider on loopback) to a real gunicorn.

Each person signs in on the provider's login page: the group claim gives the role, a person in
no group gets no account, a replayed answer gets a page saying so, a rotated signing key
is followed, an Admin Access approval is sent back to the provider first, sign-out ends the
provider's session too, Sign out on a page left open past the idle time forgets the provider's tokens, and a
person removed from the groups loses the open session and records no step-up. A late answer (an expired state)
is tested without waiting in tests/web/test_web_oidc.py.
"""
import pytest
from playwright.sync_api import expect

from app import contract
from app.audit.models import AuditEntry
from app.auth import oidc, sessions
from app.auth.models import BrowserSession
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.models import Account, utcnow
from tests import factories
from tests.live import LiveServer, free_port
from tests.oidcprovider import ADMIN_GROUP, APPROVER_GROUP, OidcProvider

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

BUTTON = "Sign in with Test IdP"
PEOPLE = {
    "ana": {"preferred_username": "ana", "email": "ana@example.com", "name": "Ana Admin", "groups": [ADMIN_GROUP]},
    "bo": {"preferred_username": "bo", "email": "bo@example.com", "name": "Bo Approver", "groups": [APPROVER_GROUP]},
    "cy": {"preferred_username": "cy", "email": "cy@example.com", "name": "Cy Both",
           "groups": [APPROVER_GROUP, ADMIN_GROUP]},
    "dee": {"preferred_username": "dee", "email": "dee@example.com", "name": "Dee Finance", "groups": ["finance"]},
}


@pytest.fixture
def provider(tmp_path):
    """oidc-provider knowing the broker that the `broker` fixture starts at `broker_port`."""
    broker_port = free_port()
    with OidcProvider(f"http://127.0.0.1:{broker_port}", PEOPLE, tmp_path) as idp:
        idp.broker_port = broker_port
        yield idp


@pytest.fixture
def broker_env():
    """Extra broker settings a test wants (override with indirect parametrization)."""
    return {}


@pytest.fixture
def broker(app, database_url, provider, broker_env):
    """gunicorn (one worker: it keeps the provider's keys it read) with sign-in through `provider`."""
    factories.account("epm", contract.ROLE_API)
    url = f"http://127.0.0.1:{provider.broker_port}"
    env = {"JITBROKER_PUBLIC_URL": url, **provider.broker_settings(**broker_env)}
    with LiveServer(database_url, workers=1, env=env, port=provider.broker_port) as server:
        yield server


def go_to_provider(page, broker):
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name=BUTTON).click()
    expect(page.locator("input[name=login]")).to_be_visible()


def log_in_at_provider(page, login):
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password the development login takes")
    page.get_by_role("button", name="Sign-in").click()


def sign_in(page, broker, login):
    go_to_provider(page, broker)
    log_in_at_provider(page, login)
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()


def audit_actions(username):
    return [entry.action for entry in AuditEntry.select().where(AuditEntry.actor == username).order_by(AuditEntry.id)]


def test_each_group_gives_its_role_and_admin_wins(broker, provider, browser, axe_violations):
    for login, role in (("ana", contract.ROLE_ADMIN), ("bo", contract.ROLE_USER), ("cy", contract.ROLE_ADMIN)):
        page = browser.new_context().new_page()
        go_to_provider(page, broker)
        log_in_at_provider(page, login)
        expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
        expect(page.get_by_role("link", name="Configuration")).to_have_count(1 if role == contract.ROLE_ADMIN else 0)
        account = Account.get(Account.idp_subject == login)
        assert (account.role, account.idp_issuer, account.email) == (role, provider.issuer, f"{login}@example.com")
        assert account.username == login and account.password_hash == oidc.NO_PASSWORD
        assert audit_actions(login)[-2:] == [oidc.ROLE_FROM_PROVIDER, "sign_in"]
        page.context.close()

    # The sign-in page with its provider button passes the accessibility check, and the configuration page
    # shows the redirect URI to register at the provider.
    page = browser.new_context().new_page()
    page.goto(f"{broker.url}/sign-in")
    expect(page.get_by_role("link", name=BUTTON)).to_be_visible()
    assert axe_violations(page) == []
    sign_in(page, broker, "ana")
    page.goto(f"{broker.url}/admin/configuration")
    expect(page.locator("#oidc-redirect-uri")).to_have_text(f"{broker.url}/sign-in/oidc/callback")
    assert axe_violations(page) == []
    page.context.close()


def test_a_provider_account_keeps_its_password_and_second_factor_at_the_provider(broker, browser, axe_violations):
    page = browser.new_page()
    sign_in(page, broker, "bo")
    for path in ("/account/password", "/account/two-factor"):
        page.goto(f"{broker.url}{path}")
        expect(page.get_by_text("your password and your second factor are kept there")).to_be_visible()
        expect(page.locator("input[type=password], input[name=code]")).to_have_count(0)
    assert axe_violations(page) == []


def test_a_local_account_of_the_same_name_is_never_taken_over(broker, provider, browser):
    local = factories.account("bo", contract.ROLE_ADMIN)
    page = browser.new_page()
    sign_in(page, broker, "bo")
    expect(page.get_by_role("link", name="Configuration")).to_have_count(0)
    provider_account = Account.get(Account.idp_subject == "bo")
    assert provider_account.id != local.id and provider_account.role == contract.ROLE_USER
    assert provider_account.username.startswith("bo@127.0.0.1")
    assert Account.get_by_id(local.id).role == contract.ROLE_ADMIN


def test_a_person_in_no_group_sees_no_access_and_gets_no_account(broker, browser, axe_violations):
    page = browser.new_page()
    go_to_provider(page, broker)
    log_in_at_provider(page, "dee")
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    expect(page.locator(".flash.error")).to_contain_text(oidc.MSG_NO_ACCESS)
    assert axe_violations(page) == []
    assert Account.get_or_none(Account.idp_subject == "dee") is None
    assert audit_actions("dee") == [oidc.SIGN_IN_DENIED]
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_replayed_callback_is_refused_with_a_page(broker, browser, axe_violations):
    page = browser.new_page()
    callbacks = []
    page.on("request", lambda sent: callbacks.append(sent.url) if "/sign-in/oidc/callback" in sent.url else None)
    sign_in(page, broker, "bo")
    assert len(callbacks) == 1
    answer = page.goto(callbacks[0])
    assert answer.status == 400
    expect(page.get_by_role("heading", name="Sign-in did not complete")).to_be_visible()
    expect(page.locator(".flash.error")).to_contain_text("already used")
    assert axe_violations(page) == []
    # A forged answer (a state this browser never got) gets the same page, never a 500.
    forged = page.goto(f"{broker.url}/sign-in/oidc/callback?code=forged&state=forged")
    assert forged.status == 400


def test_a_rotated_signing_key_is_followed_without_a_restart(broker, provider, browser):
    page = browser.new_context().new_page()
    sign_in(page, broker, "bo")
    page.context.close()
    before = provider.signing_key_ids()
    provider.rotate_signing_key()
    assert set(provider.signing_key_ids()).isdisjoint(before)
    page = browser.new_context().new_page()
    sign_in(page, broker, "bo")
    assert audit_actions("bo").count("sign_in") == 2


@pytest.fixture
def epm(broker):
    with FakeEpm(broker_url=broker.url, webhook_user="epm", webhook_password=factories.PASSWORD,
                 auto_finalize=False, strict=True) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id,
                              "client_secret": fake.client_secret})
        yield fake


def approve_admin_access(page, unit, amount=None):
    """Open the first ticket and send its Admin Access approval form with a reason and `unit` (and `amount`)."""
    page.get_by_role("link", name="INC0010001").click()
    page.get_by_role("link", name="Approve Admin Access").click()
    page.get_by_label("Reason").fill("Printer driver install, change CHG0042")
    page.locator(f"input[name=duration_unit][value={unit}]").check()
    if amount is not None:
        page.get_by_label("Number of minutes or hours").fill(amount)
    page.get_by_role("button", name="Approve Admin Access").click()


# step_up_max_age 0: every Admin Access approval steps up, however recent the sign-in (no waiting for it to age).
@pytest.mark.parametrize("broker_env", [{"JITBROKER_OIDC_STEP_UP_MAX_AGE": "0"}])
def test_an_admin_access_approval_steps_up_first_and_keeps_the_reason_and_duration(broker, epm, browser):
    request_id = epm.fire_admin_request()
    page = browser.new_page()
    sign_in(page, broker, "bo")

    approve_admin_access(page, "hours", "2")

    # The provider asks for the password again (prompt=login), then the broker records what was typed.
    expect(page.locator("input[name=login]")).to_be_visible()
    assert epm.received_count == 0
    log_in_at_provider(page, "bo")
    expect(page.locator(".flash.ok")).to_contain_text("Delivered to EPM")
    panel = page.locator(".decision-panel")
    expect(panel).to_contain_text("Printer driver install, change CHG0042")
    expect(panel).to_contain_text("2 hours")
    assert epm.decision_for(request_id)["duration"] == "7200"
    assert oidc.STEP_UP in audit_actions("bo")


@pytest.mark.parametrize("broker_env", [{"JITBROKER_OIDC_STEP_UP_MAX_AGE": "0"}])
def test_a_step_up_by_a_person_removed_from_the_groups_records_nothing(broker, epm, provider, browser):
    """The fresh ID token of the step-up is a re-check too: out of the groups, no approval and no session."""
    epm.fire_admin_request()
    page = browser.new_page()
    sign_in(page, broker, "bo")
    approve_admin_access(page, "once")
    expect(page.locator("input[name=login]")).to_be_visible()
    provider.set_groups("bo", ["finance"])
    log_in_at_provider(page, "bo")
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
    assert epm.received_count == 0
    assert oidc.ACCESS_ENDED in audit_actions("bo") and oidc.STEP_UP not in audit_actions("bo")
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_sign_out_ends_the_providers_session_too(broker, browser):
    page = browser.new_page()
    sign_in(page, broker, "bo")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".flash.ok")).to_contain_text("You are signed out")
    page.goto(f"{broker.url}/tickets")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The provider asks who is there again: its session ended with the broker's.
    page.get_by_role("link", name=BUTTON).click()
    expect(page.locator("input[name=login]")).to_be_visible()


def leave_idle(page, app, minutes):
    """Nobody uses the page's session for `minutes`: its last use moves back in the signed cookie (the broker's
    key) and in its record."""
    serializer = app.session_interface.get_signing_serializer(app)
    cookie = next(cookie for cookie in page.context.cookies() if cookie["name"] == app.config["SESSION_COOKIE_NAME"])
    values = serializer.loads(cookie["value"])
    values[sessions.SEEN] -= minutes * 60
    page.context.add_cookies([{**cookie, "value": serializer.dumps(values)}])
    record = BrowserSession.get(BrowserSession.key_digest == sessions._key_digest(values[sessions.SESSION_ID]))
    BrowserSession.update(last_seen_at=record.last_seen_at.replace(year=2020)).where(
        BrowserSession.id == record.id).execute()


def test_sign_out_on_a_page_left_open_past_the_idle_time_forgets_the_providers_tokens(app, broker, browser):
    """The only session timed out while the page stayed open; its Sign out still drops the tokens kept for it, and
    ends the provider's session as a live one's does."""
    page = browser.new_page()
    sign_in(page, broker, "bo")
    assert Account.get(Account.idp_subject == "bo").idp_tokens
    leave_idle(page, app, 31)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Yes, sign me out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert Account.get(Account.idp_subject == "bo").idp_tokens is None
    # The provider asks who is there again: its session ended with the broker's.
    page.get_by_role("link", name=BUTTON).click()
    expect(page.locator("input[name=login]")).to_be_visible()


def test_a_person_removed_from_the_groups_loses_the_open_session(broker, provider, browser):
    page = browser.new_page()
    sign_in(page, broker, "bo")
    provider.set_groups("bo", ["finance"])
    # The re-check is due (half the idle time has passed since the last one).
    Account.update(idp_checked_at=utcnow().replace(year=2020)).where(Account.idp_subject == "bo").execute()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert oidc.ACCESS_ENDED in audit_actions("bo")
    # And no access at the next sign-in.
    page.get_by_role("link", name=BUTTON).click()
    expect(page.get_by_role("heading", name="No access")).to_be_visible()
