"""Whether a page fits its viewport's width, measured once the page has loaded.

A page reached by a click can hold all its elements before its stylesheet has arrived, and laid out without
its styles it is wider than it is: waiting for the page's load event keeps such a measure from reading it."""


def fits(page):
    """Whether the page shown is no wider than its viewport (nothing scrolls sideways)."""
    page.wait_for_load_state("load")
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
