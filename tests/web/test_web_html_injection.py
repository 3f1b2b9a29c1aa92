"""HTML injection: whatever EPM sends is shown as text on every page, never run or followed."""
import re

import pytest

from app import contract
from tests import factories

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')

SCRIPT = "<script>alert('x')</script>"
ATTRIBUTE_BREAKER = "\"'><img src=x onerror=alert(1)>"
JAVASCRIPT_URL = "javascript:alert(document.cookie)"
PAYLOADS = (SCRIPT, ATTRIBUTE_BREAKER)


@pytest.fixture
def approver_client(app, approver):
    client = app.test_client()
    token = _TOKEN.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    client.post("/sign-in", data={"csrf_token": token, "username": approver.username, "password": factories.PASSWORD})
    return client


def hostile_application_request():
    info = {key: f"{key}{SCRIPT}" for key in contract.URM_REQUEST_INFO_KEYS}
    info.update(productName=f"VPN{SCRIPT}", user=f"CORP\\x{ATTRIBUTE_BREAKER}", hostName=ATTRIBUTE_BREAKER,
                downloadSourceUrl=JAVASCRIPT_URL, publisher=SCRIPT, reason=ATTRIBUTE_BREAKER)
    body = factories.application_request(**info)
    body["requestInfo"][f"extra{SCRIPT}"] = ATTRIBUTE_BREAKER
    body["TicketNumber"] = SCRIPT
    return body


def hostile_admin_request():
    return factories.admin_request(UserName=SCRIPT, ComputerId=ATTRIBUTE_BREAKER, Reason=SCRIPT,
                                   DurationRequested=ATTRIBUTE_BREAKER, UserId=JAVASCRIPT_URL)


def assert_inert(page):
    for payload in PAYLOADS:
        assert payload not in page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", page, re.IGNORECASE)


@pytest.mark.parametrize("build", [hostile_application_request, hostile_admin_request])
def test_epm_values_are_escaped_on_the_list_the_ticket_and_the_decision_form(deliver, approver_client, build):
    answer = deliver(build())
    assert answer.status_code == 200
    number = answer.json["result"]["ticket"]
    pages = ["/tickets", f"/tickets/{number}", f"/tickets/{number}/approve", f"/tickets/{number}/deny",
             "/tickets?q=" + SCRIPT]
    for path in pages:
        response = approver_client.get(path)
        assert response.status_code == 200, path
        page = response.get_data(as_text=True)
        assert_inert(page)
    ticket_page = approver_client.get(f"/tickets/{number}").get_data(as_text=True)
    assert "&lt;script&gt;" in ticket_page  # shown, as text


def test_the_download_url_is_shown_as_text_never_as_a_link(deliver, approver_client):
    number = deliver(hostile_application_request()).json["result"]["ticket"]
    page = approver_client.get(f"/tickets/{number}").get_data(as_text=True)
    assert JAVASCRIPT_URL in page
    assert not re.search(r"<a[^>]+javascript:", page, re.IGNORECASE)


def test_epm_values_are_escaped_in_the_work_note_and_state_forms(deliver, approver_client):
    number = deliver(hostile_application_request()).json["result"]["ticket"]
    page = approver_client.get(f"/tickets/{number}").get_data(as_text=True)
    token = _TOKEN.search(page).group(1)
    approver_client.post(f"/tickets/{number}/notes", data={"csrf_token": token, "work_note": SCRIPT})
    assert_inert(approver_client.get(f"/tickets/{number}").get_data(as_text=True))
