"""The Flask test client used the way a browser uses the pages: sign in, then post forms with their CSRF token."""
import re
from datetime import timedelta

from app.auth import sessions
from app.auth.models import BrowserSession
from app.web.confirmation import CONFIRM_FIELD, CONFIRM_VALUE
from tests import factories

# What the confirmation page's Confirm button adds to a destructive action's form.
CONFIRMED = {CONFIRM_FIELD: CONFIRM_VALUE}

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class WebClient:
    """The Flask test client used the way a browser uses the pages: sign in, then post forms with their token."""

    def __init__(self, client):
        self.client = client

    def request(self, method, path, **kwargs):
        # A fresh app context per request, as in production: the `app` fixture keeps
        # one pushed for the whole test, and `g` (the signed-in account, the CSRF
        # token Flask-WTF caches there) would otherwise leak from one request to the next.
        with self.client.application.app_context():
            return self.client.open(path, method=method, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def token(self):
        """A CSRF token for this session, read from a page's form as a browser would."""
        page = self.get("/sign-in", follow_redirects=True).get_data(as_text=True)
        return _TOKEN.search(page).group(1)

    def post(self, path, data=None, **kwargs):
        return self.request("POST", path, data={"csrf_token": self.token(), **(data or {})}, **kwargs)

    def sign_in(self, username, password=factories.PASSWORD, **extra):
        return self.post("/sign-in", {"username": username, "password": password, **extra})

    def session(self):
        with self.client.session_transaction() as session:
            return dict(session)

    def open_session(self, account, through_idp=False, idle_minutes=0):
        """A session opened for `account` as its sign-in opens one (the identity provider's trip has no page here),
        in this client's cookie, last used `idle_minutes` ago."""
        from flask import session as opened
        with self.client.application.test_request_context():
            sessions.start_session(account, through_idp=through_idp)
            cookie = dict(opened)
        with self.client.session_transaction() as session:
            session.update(cookie)
        self.leave_idle(idle_minutes)

    def leave_idle(self, minutes):
        """Nobody uses this session for `minutes`: its last use moves back, in the cookie and in its record."""
        with self.client.session_transaction() as session:
            session[sessions.SEEN] -= minutes * 60
            digest = sessions._key_digest(session[sessions.SESSION_ID])
        record = BrowserSession.get(BrowserSession.key_digest == digest)
        BrowserSession.update(last_seen_at=record.last_seen_at - timedelta(minutes=minutes)).where(
            BrowserSession.id == record.id).execute()
