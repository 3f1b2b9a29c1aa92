"""Policies, ITSM connectors and the Table API: an EPM tenant faked with `responses`, tickets, rules."""
import json

import pytest
import responses

from app.epm.tokens import clear_token_cache
from app.itsm.base import tokens as itsm_tokens
from app.models import Configuration, Task
from app.policies import rules as policy_rules
from tests import factories

EPM = "https://acme-services.pm.beyondtrustcloud.com"
TOKEN_URL = f"{EPM}/oauth/connect/token"
APPLICATION_URL = f"{EPM}/management-api/v2/AuthorizationRequest/notification"
ADMIN_URL = f"{EPM}/management-api/v3/AdminAccessRequest/approval"
WEBHOOK = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"


@pytest.fixture(autouse=True)
def fresh_token_caches():
    """Each test fetches its own tokens, as a new process would."""
    clear_token_cache()
    itsm_tokens.clear()
    yield
    clear_token_cache()
    itsm_tokens.clear()


@pytest.fixture
def http(app):
    """EPM's token and decision endpoints (answering 200), and room for ITSM answers a test adds."""
    Configuration.default()
    Configuration.update(pmc_host="acme-services.pm.beyondtrustcloud.com", client_id="broker-client",
                         client_secret="broker-secret").execute()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "token-1", "token_type": "Bearer", "expires_in": 3600})
        mock.post(APPLICATION_URL, json={})
        mock.post(ADMIN_URL, json={})
        yield mock


def epm_decisions(mock):
    """The decision bodies EPM received, in order."""
    return [json.loads(call.request.body) for call in mock.calls if "management-api" in call.request.url]


@pytest.fixture
def submit(client, api_auth):
    """Deliver a created event as EPM would, let the answer close (which runs the policies), return the ticket."""

    def submit(body):
        response = client.post(WEBHOOK, data=json.dumps(body), content_type="application/json", headers=api_auth)
        assert response.status_code == 200, response.get_data(as_text=True)
        number = response.json["result"]["ticket"]
        response.close()
        return Task.get(Task.number == number)

    return submit


@pytest.fixture
def add_rule():
    """Create a rule through the service the CLI and the admin page use."""

    def add(**values):
        raw = {"name": values.pop("name", "rule"), **{k: str(v) if not isinstance(v, str) else v
                                                      for k, v in values.items()}}
        return policy_rules.create_rule(raw, "root")

    return add


def notes(task):
    return [note.text for note in task.work_notes.order_by(task.work_notes.model.id)]


def application(reason, **info):
    return factories.application_request(reason=reason, **info)
