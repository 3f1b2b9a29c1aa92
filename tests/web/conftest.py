"""Fixtures for the browser pages: a test client that signs in and sends CSRF tokens like a browser."""
import re

import pytest

from app.configuration import update_configuration
from app.epm import tokens
from app.epm.fake import FakeEpm
from app.models import Task
from tests import factories

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


@pytest.fixture
def web(client):
    return WebClient(client)


@pytest.fixture
def as_approver(web, approver):
    assert web.sign_in(approver.username).status_code == 302
    return web


@pytest.fixture
def as_admin(web, admin):
    assert web.sign_in(admin.username).status_code == 302
    return web


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
def fake_epm(app, monkeypatch):
    """A fake EPM tenant on loopback, entered in the configuration as an admin would."""
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    tokens.clear_token_cache()
    with FakeEpm() as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake
    tokens.clear_token_cache()
