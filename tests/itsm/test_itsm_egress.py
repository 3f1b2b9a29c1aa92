"""ITSM connections send their secrets only where they were entered: a moved URL needs the secret again,
link-local and metadata addresses are refused, private ones only for a connection marked internal (audited),
and the check is repeated on the address each connection is made to."""
import socket

import pytest

from app import egress
from app.audit.models import AuditEntry
from app.errors import BadRequest
from app.itsm import connector_for
from app.itsm.base import ItsmSettingsError
from app.itsm.connections import SECRET_AGAIN, create_connection, update_connection
from app.itsm.models import ItsmConnection
from tests.resolving import answers  # noqa: F401 - a fixture

SN = "https://corp.service-now.com"
SDP = "https://sdp.corp.example"


@pytest.fixture
def resolves_to(monkeypatch):
    def point(address):
        monkeypatch.setattr(egress.socket, "getaddrinfo",
                            lambda *args, **kwargs: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, 443))])
    return point


def _servicenow(**extra):
    return create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "auth_method": "basic",
                              "username": "svc", "secret": "sn-password", **extra}, "root")


def test_moving_the_base_url_without_the_secret_is_refused(app):
    connection = _servicenow()
    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"base_url": "https://collector.example", "secret": ""}, "root")
    assert refused.value.extra["fields"]["secret"] == SECRET_AGAIN
    assert ItsmConnection.get().base_url == SN


def test_moving_the_base_url_with_the_secret_typed_again_is_saved(app):
    connection = _servicenow()
    update_connection(connection, {"base_url": "https://other.service-now.com", "secret": "sn-password"}, "root")
    assert ItsmConnection.get().base_url == "https://other.service-now.com"


def test_a_metadata_base_url_is_refused_even_for_an_internal_connection(app):
    with pytest.raises(BadRequest) as refused:
        _servicenow(base_url="https://169.254.169.254", options={"internal": "true"})
    assert "metadata" in refused.value.extra["fields"]["base_url"]


def test_a_private_base_url_needs_the_internal_mark_which_is_audited(app, resolves_to):
    resolves_to("10.20.30.40")
    with pytest.raises(BadRequest) as refused:
        create_connection({"name": "sdp", "kind": "sdp", "base_url": SDP, "secret": "key"}, "root")
    assert "internal" in refused.value.extra["fields"]["base_url"]
    create_connection({"name": "sdp", "kind": "sdp", "base_url": SDP, "secret": "key",
                       "options": {"internal": "true"}}, "root")
    entry = AuditEntry.get(AuditEntry.action == "itsm_connection_create")
    assert entry.detail["internal"] is True


def test_a_base_url_rebound_to_the_metadata_address_is_refused_when_connecting(app, answers):
    answers("corp.service-now.test", "203.0.113.7")
    connection = create_connection({"name": "corp", "kind": "servicenow", "base_url": "https://corp.service-now.test",
                                    "auth_method": "basic", "username": "svc", "secret": "pw"}, "root")
    answers("corp.service-now.test", "169.254.169.254")
    with pytest.raises(ItsmSettingsError, match="metadata"):
        connector_for(connection).check()
