"""Where the client secret may go, checked on what a host resolves to when the connection is made (DNS rebinding):
link-local and cloud metadata addresses never, private ones only for an internal connection, loopback always."""
import socket

import pytest

from app import egress
from app.audit.models import AuditEntry
from app.configuration import update_configuration
from app.epm.errors import EpmUnreachable
from app.errors import BadRequest
from app.models import Configuration
from app.epm.client import EpmClient
from tests.epm.conftest import APPLICATION_URL, CLIENT_ID, CLIENT_SECRET, EPM
from tests.resolving import answers  # noqa: F401 - a fixture

DECISION = {"status": "2000", "decision": "Approved", "itsmRequestId": "req-1"}
EPM_HOST = EPM.split("://", 1)[1]


@pytest.fixture
def resolves_to(monkeypatch):
    """Make every name resolve to the given address, as a rebinding DNS server would."""
    def point(address):
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        monkeypatch.setattr(egress.socket, "getaddrinfo",
                            lambda *args, **kwargs: [(family, socket.SOCK_STREAM, 6, "", (address, 443))])
    return point


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "169.254.1.1", "fe80::1", "168.63.129.16",
                                     "100.100.100.200", "0.0.0.0", "0.1.2.3", "::"])
def test_link_local_and_metadata_addresses_are_always_refused(resolves_to, address):
    resolves_to(address)
    with pytest.raises(egress.EgressRefused):
        egress.check_host("evil.example", internal=True)


@pytest.mark.parametrize("address", ["10.0.0.5", "172.16.3.4", "192.168.1.1", "fc00::5"])
def test_private_addresses_only_for_an_internal_connection(resolves_to, address):
    resolves_to(address)
    with pytest.raises(egress.EgressRefused, match="internal"):
        egress.check_host("sdp.corp.example")
    egress.check_host("sdp.corp.example", internal=True)


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "203.0.113.7"])
def test_loopback_and_public_addresses_are_allowed(resolves_to, address):
    resolves_to(address)
    egress.check_host("acme-services.pm.beyondtrustcloud.com")


def test_the_metadata_host_name_is_refused_without_resolving_it():
    with pytest.raises(egress.EgressRefused):
        egress.check_url("http://metadata.google.internal/computeMetadata/v1/")


def test_a_host_resolving_to_the_metadata_address_is_refused_at_save(app, resolves_to):
    resolves_to("169.254.169.254")
    with pytest.raises(BadRequest) as refused:
        update_configuration({"pmc_host": "rebind.example.com"})
    assert "metadata" in refused.value.extra["fields"]["pmc_host"]


def test_a_private_epm_host_is_refused_at_save_unless_marked_internal(app, resolves_to):
    resolves_to("10.20.30.40")
    with pytest.raises(BadRequest) as refused:
        update_configuration({"pmc_host": "epm.corp.example"})
    assert "mark the connection as internal" in refused.value.extra["fields"]["pmc_host"]
    assert Configuration.default().pmc_host != "epm.corp.example"


def test_a_private_epm_host_marked_internal_is_saved_and_the_mark_audited(app, resolves_to):
    resolves_to("10.20.30.40")
    update_configuration({"pmc_host": "epm.corp.example", "epm_internal": "true"}, actor="admin")
    assert Configuration.default().pmc_host == "epm.corp.example"
    change = AuditEntry.select().order_by(AuditEntry.id.desc()).get()
    assert change.detail["epm_internal"] == {"old": False, "new": True}


def test_the_internal_mark_is_not_taken_away_while_the_host_is_private(app, resolves_to):
    resolves_to("10.20.30.40")
    update_configuration({"pmc_host": "epm.corp.example", "epm_internal": "true"})
    with pytest.raises(BadRequest) as refused:
        update_configuration({"epm_internal": "false"})
    assert "internal" in refused.value.extra["fields"]["pmc_host"]
    assert Configuration.default().epm_internal is True


def test_a_host_rebound_to_the_metadata_address_after_saving_is_refused_before_connecting(answers, calls_log):
    answers("rebind-services.pm.test", "169.254.169.254")
    client = EpmClient("https://rebind-services.pm.test", CLIENT_ID, CLIENT_SECRET, timeout=7,
                       on_call=calls_log.append)
    with pytest.raises(EpmUnreachable, match="metadata"):
        client.send_application_decision(DECISION, "key-1")
    assert [(call["path"], call["status"]) for call in calls_log] == [(client.token_path, None)]


def test_the_client_calls_a_host_resolving_to_a_public_address(resolves_to, epm_mock, epm_client):
    epm_mock.post(APPLICATION_URL, json={})
    resolves_to("203.0.113.7")
    epm_client.send_application_decision(DECISION, "key-1")
    assert len(epm_mock.calls) == 2
