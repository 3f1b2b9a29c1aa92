"""Real Chromium against a real gunicorn and the fake EPM: every page the broker serves passes axe-core
with no serious or critical violation, the approver's pages fit a 375 px phone without sideways scrolling,
and each main flow (sign in, filter the list, open a ticket, approve) works from the keyboard alone.

The pages come from the application's url_map, so a new page is checked as soon as it exists: a page
whose URL needs a value (a ticket number, a rule id) fails the sweep until SAMPLES below gives one.
"""
import pytest
import requests
from flask import url_for
from playwright.sync_api import expect

from app import contract
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.itsm.connections import create_connection
from app.logs.models import OutboundCall
from app.models import Account, Decision, IncomingRequest, Task
from app.policies import bypass
from app.policies import rules as policy_rules
from app.web import labels
from app.web.confirmation import CONFIRM_FIELD
from tests import factories
from tests.browser.layout import fits
from tests.browser.test_browser_approver import LAPTOP
from tests.browser.test_browser_confirmation import end_time_of, is_focused, sign_in_with_the_keyboard, tab_to
from tests.live import LiveServer
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN = "root"
APPROVER = "jchen"
TARGET = "alice"
NARROW_PHONE = {"width": 375, "height": 740}
APPROVE_APPLICATION = labels.ACTION_LABELS[(contract.DECISION_APPROVED, contract.KIND_APPLICATION)]
# GET routes that answer JSON or plain text to programs, not pages to people.
NOT_PAGES = {"static", "health.healthz", "health.readyz", "metrics.metrics", "openapi.openapi_document",
             # Parts of the list, ticket and decision pages their htmx polling swaps in: checked within those pages.
             "web_tickets.ticket_rows", "web_tickets.ticket_live", "web_tickets.decide_live",
             # The trip to the identity provider and back: a redirect, and an answer only a provider's sign-in
             # makes. The pages it shows (the provider button, "No access", a refused answer) pass axe in
             # tests/browser/test_browser_oidc.py, against a real provider.
             "web_oidc.start", "web_oidc.callback"}
API_PREFIX = "/api/"
# How many tickets the estate opens.
TICKETS = 5
AWAITING = 2  # the open Application and Admin Access tickets nobody decided: where approvers land


@pytest.fixture
def broker(app, database_url, api_account):
    """gunicorn serving the broker, with an admin, an approver, another user and the account EPM delivers with."""
    factories.account(ADMIN, contract.ROLE_ADMIN)
    factories.account(APPROVER, contract.ROLE_USER)
    factories.account(TARGET, contract.ROLE_USER)
    with LiveServer(database_url, workers=2) as server:
        yield server


@pytest.fixture
def epm(broker, api_account):
    """A fake EPM tenant that sends its update event after it applies a decision."""
    with FakeEpm(broker_url=broker.url, webhook_user=api_account.username, webhook_password=factories.PASSWORD,
                 auto_finalize=True, strict=True) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake


def ticket_for(request_id):
    return Task.get(Task.request_id == request_id).number


@pytest.fixture
def estate(broker, epm):
    """Something on every page: open and decided tickets of both kinds, a decision waiting for EPM, someone
    elevated now, the deliveries and calls behind them, a rule, a bypass code and an ITSM connection.
    Returns the values the pages' URLs need, by endpoint."""
    decided = ticket_for(epm.fire_application_request(user="CORP\\tlee", hostName="WS-PRT-0007"))
    admin_ticket = ticket_for(epm.fire_admin_request())
    application = ticket_for(epm.fire_application_request())
    waiting = Task.get(Task.number == ticket_for(epm.fire_application_request(productName="Waiting App")))
    elevated = epm.fire_admin_request(UserName="CORP\\akowalski", ComputerId="WS-RUNNING-01", DurationRequested="3600")
    epm.decide(elevated, contract.DECISION_APPROVED, by="secops-lead", notify=True)
    wait_until(lambda: end_time_of(elevated) is not None, timeout=20, message="EPM's approval to arrive")
    answer = requests.post(f"{broker.url}/api/x_bets_pmc_jit/tickets/{decided}/decision", timeout=30,
                           auth=(ADMIN, factories.PASSWORD),
                           json={"decision": contract.DECISION_APPROVED, "reason": "Agreed with the manager",
                                 "duration_unit": contract.DURATION_ONCE})
    assert answer.status_code == 201, answer.text
    Decision.create(task=waiting, decision=contract.DECISION_APPROVED, reason="r", duration_unit="once",
                    duration_sent="Once", decided_by=ADMIN, ticket_url=f"{broker.url}/tickets/{waiting.number}")
    rule = policy_rules.create_rule({"name": "Block games", "outcome": "auto_deny"}, ADMIN)
    code, _secret = bypass.issue_code(ADMIN, "ITSM outage", True, None)
    create_connection({"name": "corp", "kind": "servicenow", "base_url": "https://corp.service-now.com",
                       "username": "svc", "secret": "pw"}, ADMIN)
    incoming = IncomingRequest.select().order_by(IncomingRequest.id).first()
    outbound = OutboundCall.select().order_by(OutboundCall.id).first()
    return {
        "samples": {
            "web_tickets.ticket": [{"number": number}
                                   for number in (decided, admin_ticket, application, ticket_for(elevated))],
            "web_tickets.decide": [{"number": number, "slug": slug}
                                   for number in (admin_ticket, application) for slug in ("approve", "deny")],
            "ops.incoming_detail": [{"sys_id": incoming.sys_id}],
            "ops.outbound_detail": [{"sys_id": outbound.sys_id}],
            "itsm_admin.edit_connection": [{"name": "corp"}],
            "policies.edit_rule": [{"rule_id": rule.id}],
        },
        "rule": rule, "code": code, "incoming": incoming, "application": application,
    }


def pages(app, samples):
    """The URL of every page (a GET route answering people) in the url_map, with sample values filled in."""
    urls = []
    with app.test_request_context():
        for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
            if "GET" not in rule.methods or rule.endpoint in NOT_PAGES or rule.rule.startswith(API_PREFIX):
                continue
            if not rule.arguments:
                urls.append(url_for(rule.endpoint))
                continue
            assert rule.endpoint in samples, f"{rule.rule} ({rule.endpoint}) needs sample values in the estate"
            urls.extend(url_for(rule.endpoint, **values) for values in samples[rule.endpoint])
    return urls


def sign_in(page, broker, username, password=factories.PASSWORD):
    page.goto(f"{broker.url}/sign-in")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def post_from(page, path, fields, csrf=True):
    """Send a form to `path` from the page shown, with its CSRF token, as the page's own buttons would."""
    with page.expect_navigation() as navigation:
        page.evaluate("""([path, fields, csrf]) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = path;
            const token = document.querySelector("input[name=csrf_token]");
            if (csrf && token) fields.csrf_token = token.value;
            for (const [name, value] of Object.entries(fields)) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.append(input);
            }
            document.body.append(form);
            form.submit();
        }""", [path, fields, csrf])
    return navigation.value


def check(page, axe_violations, found, what=None):
    """Run axe on the page shown and keep its serious and critical violations under `what`, so one run
    reports every page that has any."""
    violations = axe_violations(page)
    if violations:
        found[what or page.url] = violations


def report(found):
    """The violations found, page by page, each with the elements axe points at and what to fix."""
    return "\n".join(f"{where}:\n" + "\n".join(f"  {v['impact']} {v['id']} ({v['help']}): {node}"
                                               for v in violations for node in v["nodes"])
                     for where, violations in found.items())


def test_every_page_in_the_url_map_has_no_serious_accessibility_violation(app, broker, estate, browser,
                                                                          axe_violations):
    page = browser.new_page(viewport=LAPTOP)
    found, checked = {}, []
    page.goto(f"{broker.url}/sign-in")
    check(page, axe_violations, found, "sign-in, signed out")
    sign_in(page, broker, ADMIN)
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()

    for url in pages(app, estate["samples"]):
        response = page.goto(f"{broker.url}{url}")
        assert response.status == 200, f"{url} answered {response.status}"
        assert response.headers["content-type"].startswith("text/html"), url
        check(page, axe_violations, found)
        checked.append(url)

    page.goto(f"{broker.url}/elevated")
    expect(page.locator("table.elevated tbody tr")).to_have_count(1)
    assert {"/sign-in", "/tickets", "/elevated", "/admin/users", "/admin/configuration", "/admin/policies",
            "/admin/dashboard", "/admin/logs", "/admin/audit"} <= set(checked)
    assert not found, report(found)


def test_confirmation_error_and_form_error_pages_have_no_serious_accessibility_violation(
        broker, estate, browser, axe_violations):
    page = browser.new_page(viewport=LAPTOP)
    found = {}

    sign_in(page, broker, ADMIN, password="not-the-password")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    check(page, axe_violations, found, "sign-in refused")
    sign_in(page, broker, ADMIN)
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()

    target = Account.by_username(TARGET)
    confirmations = {
        "deactivate": (f"/admin/users/{target.id}/active", {"active": "false"}),
        "reset password": (f"/admin/users/{target.id}/password", {}),
        "end sessions": (f"/admin/users/{target.id}/sessions/end", {}),
        "reset two-factor": (f"/admin/users/{target.id}/two-factor/reset", {}),
        "delete rule": (f"/admin/policies/rules/{estate['rule'].id}/delete", {}),
        "revoke bypass code": (f"/admin/policies/bypass/{estate['code'].sys_id}/revoke", {}),
        "delete ITSM connection": ("/admin/policies/itsm/corp/delete", {}),
        "replay dry run": (f"/admin/incoming/{estate['incoming'].sys_id}/replay", {"mode": "apply"}),
        "retry all": ("/admin/deliveries/retry", {}),
    }
    for what, (path, fields) in confirmations.items():
        page.goto(f"{broker.url}/admin/users")
        response = post_from(page, path, fields)
        assert response.status == 200, what
        # A delivery that was stored fine has nothing to replay: its dry run says so, with no Replay now.
        shown = "#replay-preview" if what == "replay dry run" else f"input[name={CONFIRM_FIELD}]"
        expect(page.locator(shown), what).to_have_count(1)
        check(page, axe_violations, found, f"confirmation: {what}")

    page.goto(f"{broker.url}/admin/users")
    post_from(page, f"/admin/users/{target.id}/password", {CONFIRM_FIELD: "yes"})
    check(page, axe_violations, found, "new password shown once")
    page.goto(f"{broker.url}/admin/policies")
    assert post_from(page, "/admin/policies/bypass", {"label": "ITSM outage", "single_use": "on"}).status == 201
    check(page, axe_violations, found, "bypass code shown once")
    page.goto(f"{broker.url}/admin/policies/rules/new")
    post_from(page, "/admin/policies/rules/new", {"name": ""})
    check(page, axe_violations, found, "rule form with errors")
    page.goto(f"{broker.url}/admin/configuration")
    post_from(page, "/admin/configuration", {"pmc_host": "not a host name", "client_id": ""})
    check(page, axe_violations, found, "configuration with errors")

    page.goto(f"{broker.url}/tickets/{estate['application']}/approve")
    page.get_by_role("button", name=APPROVE_APPLICATION).click()
    expect(page.locator("#reason-error")).to_have_text(contract.MSG_REASON_REQUIRED)
    check(page, axe_violations, found, "decision form with the browser's errors")
    post_from(page, f"/tickets/{estate['application']}/approve", {"reason": "", "duration_unit": "minutes",
                                                                  "duration_value": "2"})
    check(page, axe_violations, found, "decision form with the server's errors")

    for url, status in (("/tickets/INC9999999", 404), ("/no-such-page", 404), ("/tickets?q=%00", 400)):
        assert page.goto(f"{broker.url}{url}").status == status, url
        check(page, axe_violations, found, f"error {status}: {url}")
    page.goto(f"{broker.url}/admin/users")
    assert post_from(page, f"/admin/users/{target.id}/active", {"active": "false"}, csrf=False).status == 400
    check(page, axe_violations, found, "error 400: form without its CSRF token")

    approver = browser.new_page(viewport=LAPTOP)
    sign_in(approver, broker, APPROVER)
    expect(approver.get_by_role("heading", name="Tickets")).to_be_visible()
    assert approver.goto(f"{broker.url}/admin/users").status == 403
    check(approver, axe_violations, found, "error 403: an approver on an admin page")

    assert not found, report(found)


def test_list_ticket_and_decision_form_fit_375_px_and_stay_accessible(broker, estate, browser, axe_violations):
    page = browser.new_page(viewport=NARROW_PHONE)
    found = {}
    sign_in(page, broker, APPROVER)
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()
    expect(page.locator("table.tickets tbody tr")).to_have_count(AWAITING)
    assert fits(page), "ticket list, awaiting decision"
    check(page, axe_violations, found, "ticket list, awaiting decision")
    page.get_by_role("link", name="All tickets").first.click()
    expect(page.locator("table.tickets tbody tr")).to_have_count(TICKETS)
    assert fits(page), "ticket list, all tickets"
    check(page, axe_violations, found, "ticket list, all tickets")

    for number in estate["samples"]["web_tickets.ticket"]:
        page.goto(f"{broker.url}/tickets/{number['number']}")
        expect(page.get_by_role("heading", name=number["number"])).to_be_visible()
        assert fits(page), number
        check(page, axe_violations, found)

    for values in estate["samples"]["web_tickets.decide"]:
        page.goto(f"{broker.url}/tickets/{values['number']}/{values['slug']}")
        page.locator("main button[type=submit]").click()
        expect(page.locator("#reason-error")).to_have_text(contract.MSG_REASON_REQUIRED)
        assert fits(page), f"decision form with its errors: {page.url}"
        check(page, axe_violations, found, f"decision form with its errors: {page.url}")
    assert not found, report(found)


def test_an_approver_signs_in_from_the_keyboard(broker, estate, browser):
    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, APPROVER)

    expect(page.locator("table.tickets tbody tr")).to_have_count(AWAITING)


def test_an_approver_filters_the_list_from_the_keyboard(broker, estate, browser):
    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, APPROVER)
    tab_to(page, page.get_by_role("navigation", name="Tickets to show").get_by_role("link", name="All tickets"))
    page.keyboard.press("Enter")
    expect(page.locator("table.tickets tbody tr")).to_have_count(TICKETS)
    form = page.get_by_role("search", name="Filter tickets")

    tab_to(page, form.get_by_label("Search"))
    page.keyboard.type("WS-PRT-0007")
    tab_to(page, form.get_by_role("button", name="Filter"))
    page.keyboard.press("Enter")

    expect(page.locator("table.tickets tbody tr")).to_have_count(1)
    expect(page.locator("table.tickets tbody")).to_contain_text("WS-PRT-0007")
    tab_to(page, page.get_by_role("link", name="Clear filters"))
    page.keyboard.press("Enter")
    expect(page.locator("table.tickets tbody tr")).to_have_count(AWAITING)


def test_an_approver_opens_a_ticket_from_the_keyboard(broker, estate, browser):
    number = estate["application"]
    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, APPROVER)

    tab_to(page, page.get_by_role("link", name=number, exact=True))
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name=number)).to_be_visible()
    expect(page.get_by_role("link", name=APPROVE_APPLICATION)).to_be_visible()


def test_an_approver_approves_with_a_reason_and_a_duration_from_the_keyboard(broker, estate, epm, browser):
    number = estate["application"]
    request_id = Task.get(Task.number == number).request_id
    page = browser.new_page(viewport=LAPTOP)
    sign_in_with_the_keyboard(page, broker, APPROVER)
    tab_to(page, page.get_by_role("link", name=number, exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=number)).to_be_visible()

    tab_to(page, page.get_by_role("link", name=APPROVE_APPLICATION))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=APPROVE_APPLICATION)).to_be_visible()
    tab_to(page, page.get_by_label("Reason"))
    page.keyboard.type("Release night, agreed with the manager")
    minutes = page.locator("input[name=duration_unit][value=minutes]")
    hours = page.locator("input[name=duration_unit][value=hours]")
    tab_to(page, page.locator("input[name=duration_unit]:checked"))
    # Arrow keys move through a radio group, checking as they go.
    for _ in range(4):
        if is_focused(hours):
            break
        page.keyboard.press("ArrowDown")
    expect(hours).to_be_checked()
    expect(minutes).not_to_be_checked()
    tab_to(page, page.get_by_label("Number of minutes or hours"))
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    tab_to(page, page.get_by_role("button", name=APPROVE_APPLICATION))
    page.keyboard.press("Enter")

    expect(page.locator(".flash.ok")).to_contain_text("Delivered to EPM")
    expect(page.locator(".decision-panel")).to_contain_text("2 hours")
    assert epm.decision_for(request_id)["duration"] == "7200"


def test_an_api_account_is_told_why_it_cannot_sign_in_only_after_its_right_password(broker, api_account, browser,
                                                                                    axe_violations):
    page = browser.new_page(viewport=NARROW_PHONE)
    sign_in(page, broker, api_account.username, password="not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Invalid user name or password")
    expect(page.get_by_role("alert")).not_to_contain_text("role (api)")

    sign_in(page, broker, api_account.username)

    expect(page.get_by_role("alert")).to_contain_text(
        "This account's role (api) is for EPM's deliveries: it cannot sign in here.")
    assert fits(page)
    assert axe_violations(page) == []
