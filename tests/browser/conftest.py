"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and axe-core to check a page."""
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Installed from package.json by `npm ci` (scripts/test runs it when node_modules is missing).
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# What a page may not have: axe's two worst impacts. Moderate and minor findings are left to review.
AXE_IMPACTS = ("serious", "critical")


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright."""
    # Generous waits: two test workers share two cores with gunicorn and Chromium.
    expect.set_options(timeout=15_000)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def axe_source():
    assert AXE.is_file(), f"{AXE} is missing: run `npm ci` at the repository root"
    return AXE.read_text(encoding="utf-8")


@pytest.fixture
def axe_violations(axe_source):
    """A function giving the serious and critical axe-core violations of the page a Playwright page shows.

    axe is evaluated through DevTools rather than added as a script tag: the pages' Content-Security-Policy
    forbids inline script, and it stays in force for the check (no bypass_csp)."""

    def violations(page):
        # The page as its reader sees it: styled (a page reached by a click may hold its elements before its
        # stylesheet has arrived; tests/browser/layout.py).
        page.wait_for_load_state("load")
        if not page.evaluate("typeof window.axe === 'object'"):
            page.evaluate(f"{axe_source}\n;undefined")
        found = page.evaluate("""impacts => axe.run(document, {resultTypes: ["violations"]}).then(
            result => result.violations.filter(v => impacts.includes(v.impact)).map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)})))""", list(AXE_IMPACTS))
        return found

    return violations
