"""Only admins see operations: every page and API answers 403 to an approver, 401 to nobody, and works for admins."""
import pytest

from app.models import IncomingRequest
from app.logs.models import AppLog, OutboundCall

OPS_ENDPOINTS = ("ops.", "ops_api.")
PAGE_PATHS = ["/admin/dashboard", "/admin/incoming", "/admin/incoming/{incoming}", "/admin/outbound",
              "/admin/outbound/{call}", "/admin/logs"]
API_PATHS = ["/api/x_bets_pmc_jit/ops/dashboard", "/api/x_bets_pmc_jit/ops/incoming_requests",
             "/api/x_bets_pmc_jit/ops/incoming_requests/{incoming}", "/api/x_bets_pmc_jit/ops/outbound_calls",
             "/api/x_bets_pmc_jit/ops/outbound_calls/{call}", "/api/x_bets_pmc_jit/ops/app_log",
             "/api/x_bets_pmc_jit/tickets/{ticket}/history", "/api/x_bets_pmc_jit/audit"]


@pytest.fixture
def records(app, make_ticket):
    task = make_ticket()
    call = OutboundCall.create(method="POST", url="https://x/t", path="/t", status=200, duration_ms=1.0, attempt=1,
                               what="token")
    AppLog.create(level="WARNING", level_number=30, logger="app.x", message="kept")
    return {"incoming": IncomingRequest.get().sys_id, "call": call.sys_id, "ticket": task.number}


def test_every_operations_route_is_listed_here(app):
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith(OPS_ENDPOINTS)}
    listed = {path.replace("{incoming}", "<sys_id>").replace("{call}", "<sys_id>").replace("{ticket}", "<number>")
              for path in PAGE_PATHS + API_PATHS}
    replays = {"/admin/incoming/<sys_id>/replay", "/api/x_bets_pmc_jit/ops/incoming_requests/<sys_id>/replay"}
    assert routes == listed | replays


def test_approvers_get_403_on_every_page(records, as_approver):
    for path in PAGE_PATHS:
        assert as_approver.get(path.format(**records)).status_code == 403, path
    replay = as_approver.post(f"/admin/incoming/{records['incoming']}/replay", {"mode": "apply"})
    assert replay.status_code == 403


def test_approvers_get_403_on_every_api(records, client, approver_auth):
    for path in API_PATHS:
        assert client.get(path.format(**records), headers=approver_auth).status_code == 403, path
    replay = client.post(f"/api/x_bets_pmc_jit/ops/incoming_requests/{records['incoming']}/replay",
                         json={"dry_run": True}, headers=approver_auth)
    assert replay.status_code == 403


def test_the_api_wants_credentials(records, client):
    for path in API_PATHS:
        assert client.get(path.format(**records)).status_code == 401, path


def test_pages_send_anonymous_visitors_to_sign_in(records, web):
    for path in PAGE_PATHS:
        answer = web.get(path.format(**records))
        assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"], path


def test_admins_open_every_page_and_api(records, as_admin, client, admin_auth):
    for path in PAGE_PATHS:
        assert as_admin.get(path.format(**records)).status_code == 200, path
    for path in API_PATHS:
        answer = client.get(path.format(**records), headers=admin_auth)
        assert answer.status_code == 200, path
        assert "result" in answer.json


def test_the_api_takes_an_admins_session_for_reading_only(records, as_admin):
    assert as_admin.get("/api/x_bets_pmc_jit/ops/dashboard").status_code == 200
    replay = as_admin.client.post(f"/api/x_bets_pmc_jit/ops/incoming_requests/{records['incoming']}/replay",
                                  json={"dry_run": True})
    assert replay.status_code == 401


def test_admins_see_the_operations_link(as_admin, as_approver_page):
    assert 'href="/admin/dashboard"' in as_admin.get("/tickets").get_data(as_text=True)
    assert 'href="/admin/dashboard"' not in as_approver_page


@pytest.fixture
def as_approver_page(app, client, approver):
    from tests.webclient import WebClient

    approver_web = WebClient(app.test_client())
    assert approver_web.sign_in(approver.username).status_code == 302
    return approver_web.get("/tickets").get_data(as_text=True)
