"""Fixtures for the browser tests: Debian's Chromium driven by Playwright."""
import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    # Generous waits: two test workers share two cores with gunicorn and Chromium.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
