"""An EPM tenant configured and faked with `responses` for decision tests."""
import json

import pytest
import responses

from app.epm.tokens import clear_token_cache
from app.models import Configuration

EPM = "https://acme-services.pm.beyondtrustcloud.com"
TOKEN_URL = f"{EPM}/oauth/connect/token"
APPLICATION_URL = f"{EPM}/management-api/v2/AuthorizationRequest/notification"
ADMIN_URL = f"{EPM}/management-api/v3/AdminAccessRequest/approval"
APPLICATION_RECORDS_URL = f"{EPM}/management-api/v3/AuthorizationRequest"


@pytest.fixture(autouse=True)
def fresh_token_cache():
    """Each test fetches its own token, as a new process would."""
    clear_token_cache()
    yield
    clear_token_cache()


@pytest.fixture
def epm(app):
    """EPM's token and decision endpoints, answering 200 unless a test says otherwise."""
    Configuration.default()
    Configuration.update(pmc_host="acme-services.pm.beyondtrustcloud.com", client_id="broker-client",
                         client_secret="broker-secret").execute()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "token-1", "token_type": "Bearer", "expires_in": 3600,
                                   "scope": "urn:management:api"})
        yield mock


def decision_calls(mock):
    return [call for call in mock.calls if "management-api" in call.request.url]


def sent_body(call):
    return json.loads(call.request.body)
