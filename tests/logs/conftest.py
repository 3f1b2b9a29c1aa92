"""Fixtures for the log tests: a faked EPM tenant whose calls are recorded, the stored log."""
import json

import pytest
import responses

from app.configuration import update_configuration
from app.epm.tokens import clear_token_cache
from app.logs import store as log_store
from app.logs.setup import install_log_handlers

EPM = "https://acme-services.pm.beyondtrustcloud.com"
TOKEN_URL = f"{EPM}/oauth/connect/token"
APPLICATION_URL = f"{EPM}/management-api/v2/AuthorizationRequest/notification"
APPLICATION_LIST_URL = f"{EPM}/management-api/v3/AuthorizationRequest"
CLIENT_SECRET = "s3cr3t-Client-Value-Never-Stored"
ACCESS_TOKEN = "eyJ-access-token-never-stored"


@pytest.fixture
def epm(app):
    """The configured EPM tenant faked with `responses`: a token, decisions and reads all answer 200."""
    clear_token_cache()
    update_configuration({"pmc_host": "acme-services.pm.beyondtrustcloud.com", "client_id": "broker-client",
                          "client_secret": CLIENT_SECRET})
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600,
                                   "scope": "urn:management:api"})
        mock.post(APPLICATION_URL, json={"status": "ok"})
        mock.get(APPLICATION_LIST_URL, json={"data": [], "pageCount": 0, "totalRecordCount": 0})
        yield mock
    clear_token_cache()


def stored_log():
    """Every app-log row, oldest first, once the writer has stored what was logged so far."""
    from app.logs.models import AppLog

    assert log_store.flush(10)
    return list(AppLog.select().order_by(AppLog.id))


def stdout_reader(app, capsys):
    """Start writing log lines to the stdout capsys captures now; returns a reader of the JSON lines."""
    install_log_handlers(app)  # again: capsys swaps stdout per test phase, and this is the test's
    capsys.readouterr()

    def lines():
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    return lines
