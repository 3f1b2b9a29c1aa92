"""The ticket link EPM receives with a decision never comes from the deciding request: an approver (or anyone in
front of the broker) who sends `Host: evil.example` or `X-Forwarded-Host: evil.example` cannot make EPM link to
their host. It is server.public_url, else this host's fully qualified name and PORT."""
import socket

import pytest
import requests

from app.epm.fake import FakeEpm
from app.epm.tokens import clear_token_cache
from app.models import Configuration, Task
from tests import factories
from tests.live import LiveServer, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

PUBLIC_URL = "https://jit.example.com"
FORGED_HOST = "evil.example"


@pytest.fixture
def broker(app, database_url, api_account, tmp_path):
    """Start a gunicorn broker from `[server]` TOML lines and a strict fake EPM that knows it; yields
    (server, fake) for the test's own start."""
    factories.account("alice", "user")
    started = []

    def start(server_toml, env=None):
        config = tmp_path / "broker.toml"
        config.write_text(f"[server]\n{server_toml}\n[epm]\ntimeout_seconds = 2\n")
        server = LiveServer(database_url, workers=1, env={"JITBROKER_CONFIG": str(config), **(env or {})}).start()
        started.append(server)
        fake = FakeEpm(broker_url=server.url, webhook_user="epm", webhook_password=factories.PASSWORD,
                       strict=True).start()
        started.append(fake)
        Configuration.default()
        Configuration.update(pmc_host=fake.url, client_id=fake.client_id,
                             client_secret=fake.client_secret).execute()
        clear_token_cache()
        return server, fake

    yield start
    clear_token_cache()
    for running in reversed(started):
        running.stop()


def approve_with_a_forged_host(server, fake):
    """Approve a new request through the JSON API, claiming to be reached at evil.example; returns the
    ticketUrl EPM received with the decision."""
    request_id = fake.fire_application_request()
    number = Task.get(Task.request_id == request_id).number
    answer = requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{number}/decision",
                           auth=("alice", factories.PASSWORD), timeout=30,
                           headers={"Host": FORGED_HOST, "X-Forwarded-Host": FORGED_HOST,
                                    "X-Forwarded-Proto": "https"},
                           json={"decision": "Approved", "reason": "printer driver", "duration_unit": "once"})
    assert answer.status_code == 201, answer.text
    wait_until(lambda: fake.decision_for(request_id) is not None, message="EPM to receive the decision")
    return number, fake.decision_for(request_id)["ticketUrl"]


def test_a_forged_host_header_does_not_pick_the_link_sent_to_epm_when_public_url_is_set(broker):
    server, fake = broker(f'public_url = "{PUBLIC_URL}"')

    number, link = approve_with_a_forged_host(server, fake)

    assert link == f"{PUBLIC_URL}/tickets/{number}"


def test_without_public_url_the_link_sent_to_epm_is_this_hosts_name_and_port(broker):
    port = free_port()
    server, fake = broker("trusted_proxies = 1", env={"PORT": str(port)})  # X-Forwarded-Host believed by ProxyFix

    number, link = approve_with_a_forged_host(server, fake)

    assert FORGED_HOST not in link
    assert link == f"http://{socket.getfqdn()}:{port}/tickets/{number}"


def test_without_public_url_or_port_the_link_sent_to_epm_names_port_8000(broker):
    server, fake = broker("", env={"PORT": ""})

    number, link = approve_with_a_forged_host(server, fake)

    assert link == f"http://{socket.getfqdn()}:8000/tickets/{number}"
