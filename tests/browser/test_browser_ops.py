"""Real Chromium against a real gunicorn and the fake EPM: what an admin keeping the broker running sees.

An admin follows one request through the operations pages (dashboard figures moving,
the ticket's processing history, the calls to EPM with their secrets masked, the
application log filtered, the audit log), replays a stored delivery with a dry run
first, and an approver is refused every operations page.
"""
import json
import re

import pytest
import requests
from playwright.sync_api import expect

from app import contract
from app.configuration import update_configuration
from app.epm.fake import FakeEpm
from app.models import IncomingRequest, Task
from app.web import labels
from tests import factories
from tests.browser.layout import fits
from tests.live import LiveServer, free_port
from tests.browser.test_browser_approver import LAPTOP, PHONE, reload_until
from tests.waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

ADMIN = "root"
APPROVER = "jchen"
# Distinctive, so finding either anywhere in a page cannot be a coincidence.
CLIENT_SECRET = "Fake-EPM-client-Secret-7f3c9a"
APPROVE = labels.ACTION_LABELS[(contract.DECISION_APPROVED, contract.KIND_APPLICATION)]


@pytest.fixture
def broker(app, database_url, api_account, tmp_path):
    """gunicorn serving the broker at its public_url, as deployed, with an admin, an approver and the account EPM
    delivers with."""
    factories.account(ADMIN, contract.ROLE_ADMIN)
    factories.account(APPROVER, contract.ROLE_USER)
    port = free_port()
    config = tmp_path / "broker.toml"
    config.write_text(f'[server]\npublic_url = "http://127.0.0.1:{port}"\n')
    with LiveServer(database_url, workers=2, port=port, env={"JITBROKER_CONFIG": str(config)}) as server:
        yield server


@pytest.fixture
def epm(broker, api_account):
    """A fake EPM tenant that sends its update event after it applies a decision; tickets close on it."""
    with FakeEpm(client_secret=CLIENT_SECRET, broker_url=broker.url, webhook_user=api_account.username,
                 webhook_password=factories.PASSWORD, auto_finalize=True, strict=True) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret,
                              "auto_close": "true"})
        yield fake


def sign_in(page, broker, username):
    page.goto(f"{broker.url}/tickets")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(factories.PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Tickets")).to_be_visible()


def open_operations_page(page, link, heading=None):
    """Follow the menu to an operations page: Operations, then the page's own link."""
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    page.get_by_role("navigation", name="Operations").get_by_role("link", name=link).click()
    expect(page.get_by_role("heading", name=heading or link, exact=True)).to_be_visible()


def figure(page, name):
    return page.locator(f'[data-figure="{name}"]')


def column(page, table, number):
    """The texts of one column of `table`'s body rows, top to bottom."""
    return [text.strip() for text in page.locator(f"{table} tbody tr > :nth-child({number})").all_text_contents()]


def reload_until_step(page, kind, seconds=20):
    """Reload the ticket page until its processing history shows a step of `kind`.

    The page reads the ticket and its JIT record one after the other, so it can show EPM's
    final decision a moment before the closing that the same transaction stored."""
    def shown():
        if kind in column(page, "table.history", 2):
            return True
        page.reload()
        return False

    wait_until(shown, timeout=seconds, interval=0.3, message=f"a {kind!r} step")


def filter_log(page, **fields):
    form = page.get_by_role("search", name="Filter the log")
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name="Filter").click()


def test_admin_follows_a_request_through_dashboard_history_calls_log_and_audit(broker, epm, browser):
    epm.fire_application_request()
    page = browser.new_page(viewport=LAPTOP)
    sign_in(page, broker, ADMIN)

    open_operations_page(page, "Dashboard", "Operations dashboard")
    expect(figure(page, f"requests-{contract.KIND_APPLICATION}")).to_have_text("1")
    expect(figure(page, "approved")).to_have_text("0")
    expect(figure(page, "attempts-failed")).to_have_text("0")
    expect(figure(page, "auth-failures")).to_have_text("0")
    expect(figure(page, "median")).to_have_text("–")

    # Someone knocks at the webhook with a wrong password; EPM refuses the first decision attempt.
    knock = requests.post(f"{broker.url}{contract.WEBHOOK_PATH}", json=factories.application_request(),
                          auth=("epm", "not-the-password"), timeout=10)
    assert knock.status_code == 401
    epm.fail_next(1, 503)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tickets").click()
    page.get_by_role("link", name="INC0010001").click()
    page.get_by_role("link", name=APPROVE).click()
    page.get_by_label("Reason").fill("Release night, agreed with the manager")
    page.locator(f"input[name=duration_unit][value={contract.DURATION_ONCE}]").check()
    page.get_by_role("button", name=APPROVE).click()
    expect(page.locator(".flash")).to_contain_text(labels.DELIVERY_LABELS[contract.DELIVERY_PENDING])
    page.get_by_role("button", name="Retry now").click()
    expect(page.locator(".flash.ok")).to_contain_text(labels.DELIVERY_LABELS[contract.DELIVERY_DELIVERED])
    reload_until(page, page.locator(".decision-panel"), "Performed by")
    reload_until_step(page, "closed")

    # The processing history, oldest first: each delivery attempt, EPM's update, the closing.
    steps = [(kind, what) for kind, what in zip(column(page, "table.history", 2), column(page, "table.history", 3))
             if kind != "work note"]
    kinds = [kind for kind, _ in steps]
    assert [kind for kind in kinds if kind not in ("delivery attempt", "decision delivered")] == [
        "delivery received", "ticket created", "decision recorded", "delivery received", "finalized by EPM", "closed"]
    attempts = [(index, what) for index, (kind, what) in enumerate(steps) if kind == "delivery attempt"]
    decision_calls = [(index, re.search(r"→ (\d+)", what).group(1)) for index, what in attempts
                      if what.startswith("application decision")]
    assert [status for _, status in decision_calls] == ["503", "200"]
    assert any(what.startswith("token: POST") for _, what in attempts)
    # Only what follows from cause and effect is asserted: EPM's update (sent once it applied
    # the decision) may be stored a moment before the broker logs the call that EPM answered.
    updated = len(kinds) - 1 - kinds[::-1].index("delivery received")
    assert kinds.index("decision recorded") < attempts[0][0] and decision_calls[0][0] < updated
    assert kinds.index("decision delivered") > attempts[-1][0]
    assert dict(steps)["decision recorded"] == f"Approved by {ADMIN}: Release night, agreed with the manager"
    assert dict(steps)["finalized by EPM"].startswith("EPM finalized the decision: Approved")

    # The dashboard's figures moved with what happened.
    open_operations_page(page, "Dashboard", "Operations dashboard")
    expect(figure(page, "approved")).to_have_text("1")
    expect(figure(page, "attempts-failed")).to_have_text("1")
    expect(figure(page, "median")).not_to_have_text("–")
    reload_until(page, figure(page, "auth-failures"), "(last ")  # the log writer stores the refusal on its own time
    expect(figure(page, "auth-failures")).to_have_text(re.compile(r"^\s*1\s"))

    # Calls to EPM: the token call and both decision attempts, no secret anywhere.
    open_operations_page(page, "Calls to EPM")
    calls = column(page, "table.ops-table", 2)
    assert calls.count("application decision") == 2 and "token" in calls
    page.get_by_role("search", name="Filter calls").get_by_label("Outcome").select_option(label="Failed")
    page.get_by_role("search", name="Filter calls").get_by_role("button", name="Filter").click()
    expect(page.locator("table.ops-table tbody tr")).to_have_count(1)
    expect(page.locator("table.ops-table tbody tr")).to_contain_text("503")
    page.get_by_role("link", name="Clear filters").click()
    page.locator("table.ops-table tbody tr", has_text="token").first.locator("th a").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Token: POST"))).to_be_visible()
    expect(page.locator("pre.body").first).to_contain_text("client_secret=********")
    expect(page.locator("pre.body").last).to_contain_text('"access_token": "********"')
    secrets = [CLIENT_SECRET, *list(epm._tokens)]  # every access token the fake issued
    assert len(secrets) > 1
    for url in (page.url, f"{broker.url}/admin/outbound"):
        page.goto(url)
        content = page.content()
        assert not [secret for secret in secrets if secret in content], url

    # The application log, filtered by source and then by ticket.
    open_operations_page(page, "Application log")
    filter_log(page, **{"Source (logger)": "app.ops.webhook_auth"})
    reload_until(page, page.locator("main"), "webhook authentication refused")
    assert set(column(page, "table.ops-table", 3)) == {"app.ops.webhook_auth"}
    expect(page.locator("table.ops-table")).to_contain_text("HTTP 401")
    page.get_by_role("link", name="Clear filters").click()
    filter_log(page, Ticket="INC0010001")
    reload_until(page, page.locator("main"), "failed (attempt 1)")
    assert set(column(page, "table.ops-table", 3)) == {"app.decisions.delivery"}
    assert set(column(page, "table.ops-table", 6)) == {"INC0010001"}
    expect(page.locator("table.ops-table")).not_to_contain_text("webhook authentication refused")

    # The audit log: this admin's sign-in and decision.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()

    def audited(action):
        return page.locator("table.audit tbody tr").filter(has=page.locator("th", has_text=re.compile(f"^{action}$")))

    expect(audited("sign_in")).to_have_count(1)
    expect(audited("sign_in")).to_contain_text(ADMIN)
    expect(audited("decision")).to_have_count(1)
    expect(audited("decision")).to_contain_text(f"{ADMIN}")
    expect(audited("decision")).to_contain_text("ticket INC0010001")


@pytest.fixture
def unknown_admin_delivery(app, deliver, monkeypatch):
    """An Admin Access request the intake stored as an error while its event type was unknown to it."""
    body = factories.admin_request()
    with monkeypatch.context() as unknown:
        unknown.delitem(contract.EVENT_TYPES, contract.ADMIN_TICKET_CREATED.name)
        assert deliver(body).status_code == 400
    return IncomingRequest.get(IncomingRequest.request_id == body["RequestId"])


def test_admin_replays_a_stored_delivery_after_a_dry_run_and_approvers_are_kept_out(
        broker, epm, browser, unknown_admin_delivery):
    processed_id = epm.fire_application_request()
    approver = browser.new_context(viewport=LAPTOP).new_page()
    sign_in(approver, broker, APPROVER)
    expect(approver.get_by_role("navigation", name="Main").get_by_role("link", name="Operations")).to_have_count(0)
    for path in ("/admin/dashboard", "/admin/incoming", f"/admin/incoming/{unknown_admin_delivery.sys_id}",
                 "/admin/outbound", "/admin/logs"):
        answer = approver.goto(f"{broker.url}{path}")
        assert answer.status == 403, path
        expect(approver.locator(".status-code")).to_have_text("Error 403")
        expect(approver.locator("main")).not_to_contain_text(unknown_admin_delivery.request_id)

    # On a phone the admin menu wraps instead of running off the screen.
    phone = browser.new_context(viewport=PHONE).new_page()
    sign_in(phone, broker, ADMIN)
    operations = phone.get_by_role("navigation", name="Main").get_by_role("link", name="Operations")
    expect(operations).to_be_in_viewport()
    assert fits(phone)
    box = operations.bounding_box()
    assert box["x"] + box["width"] <= PHONE["width"]

    page = browser.new_context(viewport=LAPTOP).new_page()
    sign_in(page, broker, ADMIN)
    open_operations_page(page, "Incoming requests")
    rows = page.locator("table.ops-table tbody tr")
    expect(rows).to_have_count(2)
    search = page.get_by_role("search", name="Filter deliveries")
    search.get_by_label("Status").select_option("error")
    search.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Unknown event type")
    expect(rows).to_contain_text(unknown_admin_delivery.request_id)
    page.get_by_role("link", name="Clear filters").click()
    search.get_by_label("RequestId").fill(processed_id)
    search.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("INC0010001")
    page.get_by_role("link", name="Clear filters").click()

    rows.filter(has_text=unknown_admin_delivery.request_id).get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=f"Delivery {unknown_admin_delivery.sys_id}")).to_be_visible()
    shown = page.locator("pre.body").text_content()
    assert shown == json.dumps(json.loads(bytes(unknown_admin_delivery.raw_body)), indent=2, ensure_ascii=False)
    assert f'\n  "RequestId": "{unknown_admin_delivery.request_id}"' in shown
    expect(page.get_by_role("button", name="Replay now")).to_have_count(0)

    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".preview")).to_have_text(
        f"Dry run: would create a ticket of type Incident for Admin Access request {unknown_admin_delivery.request_id}")
    expect(page.locator(".status")).to_have_text("error")
    assert Task.select().count() == 1, "a dry run changes nothing"

    page.get_by_role("button", name="Replay now").click()
    expect(page.locator(".flash.ok")).to_have_text(
        f"Replay: created Incident INC0010002 for Admin Access request {unknown_admin_delivery.request_id}.")
    expect(page.locator(".status")).to_have_text("processed")
    page.locator(".details").get_by_role("link", name="INC0010002").click()
    expect(page.get_by_role("heading", name=re.compile("^INC0010002"))).to_be_visible()
    history = page.locator("table.history")
    expect(history).to_contain_text("delivery received")
    expect(history).to_contain_text(f"replayed by {ADMIN}")
