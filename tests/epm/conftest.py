"""Fixtures for the EPM tests: a clean token cache, a `responses`-faked tenant, a webhook receiver."""
import threading
import time

import pytest
import responses
from werkzeug.serving import make_server
from werkzeug.wrappers import Request

from app.epm import tokens
from app.epm.client import EpmClient

EPM = "https://acme-services.pm.beyondtrustcloud.com"
TOKEN_URL = f"{EPM}/oauth/connect/token"
APPLICATION_URL = f"{EPM}/management-api/v2/AuthorizationRequest/notification"
ADMIN_URL = f"{EPM}/management-api/v3/AdminAccessRequest/approval"
APPLICATION_LIST_URL = f"{EPM}/management-api/v3/AuthorizationRequest"
ADMIN_LIST_URL = f"{EPM}/management-api/v3/AdminAccessRequest"
CLIENT_ID = "broker-client"
CLIENT_SECRET = "s3cr3t-Value-Never-Logged"
TOKEN = "eyJ-token-one"


def token_answer(access_token=TOKEN, expires_in=3600):
    return {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
            "scope": "urn:management:api"}


@pytest.fixture(autouse=True)
def fresh_tokens(monkeypatch):
    """Every test starts without cached tokens, and leaves the environment as it found it
    (the client may allow oauthlib plain http for a loopback server)."""
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    tokens.clear_token_cache()
    yield
    tokens.clear_token_cache()


@pytest.fixture
def epm_mock():
    """EPM's token endpoint answering one token; tests add the API answers they need."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json=token_answer())
        yield mock


@pytest.fixture
def calls_log():
    return []


@pytest.fixture
def epm_client(calls_log):
    return EpmClient(EPM, CLIENT_ID, CLIENT_SECRET, timeout=7, on_call=calls_log.append)


def token_calls(mock):
    return [call for call in mock.calls if call.request.url == TOKEN_URL]


def api_calls(mock):
    return [call for call in mock.calls if "/management-api/" in call.request.url]


class WebhookReceiver:
    """A tiny broker stand-in on loopback that records every POST it gets and answers `status`."""

    def __init__(self, status=200, delay=0.0):
        self.status, self.delay = status, delay
        self.received = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_port}"

    def __call__(self, environ, start_response):
        incoming = Request(environ)
        record = {"path": incoming.path, "headers": dict(incoming.headers), "json": incoming.get_json(silent=True)}
        time.sleep(self.delay)
        with self._lock:
            self.received.append(record)
        start_response(f"{self.status} Answer", [("Content-Type", "application/json")])
        return [b"{}"]

    def events(self):
        with self._lock:
            return [record["json"] for record in self.received]


@pytest.fixture
def webhook_receiver():
    receiver = WebhookReceiver()
    receiver._thread.start()
    yield receiver
    receiver._server.shutdown()
    receiver._server.server_close()
    receiver._thread.join(5)
