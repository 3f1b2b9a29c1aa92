"""Fixtures for the browser pages: tickets from EPM and a faked EPM tenant (the signed-in `web` client is in tests/conftest.py)."""
import pytest
from playwright.sync_api import expect, sync_playwright

from app.models import Task
from tests import factories

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def make_ticket(deliver):
    """Deliver a created event as EPM would and return the ticket it became."""

    def make(body):
        answer = deliver(body)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return Task.get(Task.number == answer.json["result"]["ticket"])

    return make


@pytest.fixture
def application_ticket(make_ticket):
    return make_ticket(factories.application_request())


@pytest.fixture
def admin_ticket(make_ticket):
    return make_ticket(factories.admin_request())



@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    # Generous waits: two test workers share two cores with gunicorn and Chromium.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
