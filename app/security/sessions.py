"""Browser session lifetimes: an idle time-out and an absolute one, both from the settings.

A session records when it was opened and when it was last used (seconds since the
epoch, inside Flask's signed cookie, so a client cannot move them). Past either
limit it is over, whatever the cookie's own expiry says.
"""
import time

from flask import current_app, session

OPENED = "opened_at"
SEEN = "seen_at"


def mark_opened():
    """Stamp a freshly signed-in session."""
    now = int(time.time())
    session[OPENED] = now
    session[SEEN] = now


def still_valid():
    """True when this session is within both limits (and notes this use); False when it has run out."""
    settings = current_app.extensions["settings"]
    now = int(time.time())
    opened, seen = session.get(OPENED), session.get(SEEN)
    if not isinstance(opened, int) or not isinstance(seen, int):
        return False
    if now - opened > settings.session_max_hours * 3600 or now - seen > settings.session_idle_minutes * 60:
        return False
    if now - seen >= 30:  # no need to rewrite the cookie on every click
        session[SEEN] = now
    return True
