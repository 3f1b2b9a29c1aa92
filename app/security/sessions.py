"""Browser session lifetimes: an idle time-out and an absolute one, both from the settings.

A session records when it was opened and when it was last used (seconds since the
epoch, inside Flask's signed cookie, so a client cannot move them). Past either
limit it is over, whatever the cookie's own expiry says.
"""
import time

from flask import current_app, session
from flask.sessions import SecureCookieSessionInterface

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


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened for nothing when a request brings no cookie.

    EPM's deliveries and the JSON API's clients authenticate with Basic credentials and
    never send the session cookie, yet Flask builds the cookie's signer to open every
    request's session. Without the cookie there is nothing to verify, and an empty
    session is all there is; one that gets values (sign-in) is signed as it is saved.
    """

    def open_session(self, app, request):
        # No Cookie header at all is the common case, and needs no cookie parsing.
        if not request.environ.get("HTTP_COOKIE") or self.get_cookie_name(app) not in request.cookies:
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)
