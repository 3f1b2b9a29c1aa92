"""ITSM connections send their secrets only where they were entered: a moved URL, an option naming a host
(ServiceDesk Plus Cloud's accounts_url) or a kind with other token endpoints needs each stored secret again,
link-local and metadata addresses are refused, private ones only for a connection marked internal (audited),
and the check is repeated on the address each connection is made to."""
import socket

import pytest
import responses

from app import egress
from app.audit.models import AuditEntry
from app.errors import BadRequest
from app.itsm import connector_for
from app.itsm.base import ItsmSettingsError
from app.itsm.connections import SECRET_AGAIN, create_connection, update_connection, validate_connection
from app.itsm.models import ItsmConnection
from tests.resolving import answers  # noqa: F401 - a fixture

SN = "https://corp.service-now.com"
SDP = "https://sdp.corp.example"
COLLECTOR = "https://collector.example"
SDP_CLOUD_CHANGES = "https://sdpondemand.manageengine.com/app/itdesk/api/v3/changes"


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


def _zoho(**extra):
    return create_connection({"name": "sdp", "kind": "sdp_cloud", "auth_method": "zoho_oauth",
                              "client_id": "1000.CID", "client_secret": "zoho-secret",
                              "refresh_token": "1000.refresh", "options": {"portal": "itdesk"}, **extra}, "root")


def test_moving_the_zoho_accounts_url_without_the_secrets_is_refused(app):
    connection = _zoho()
    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"options": {"portal": "itdesk", "accounts_url": COLLECTOR}}, "root")
    assert refused.value.extra["fields"] == {"client_secret": SECRET_AGAIN, "refresh_token": SECRET_AGAIN}
    assert "accounts_url" not in ItsmConnection.get().options


def test_moving_the_zoho_accounts_url_needs_each_stored_secret_again(app):
    connection = _zoho()
    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"options": {"portal": "itdesk", "accounts_url": COLLECTOR},
                                       "client_secret": "zoho-secret"}, "root")
    assert refused.value.extra["fields"] == {"refresh_token": SECRET_AGAIN}


@responses.activate
def test_the_secrets_typed_again_with_a_moved_accounts_url_go_there(app):
    connection = _zoho()
    update_connection(connection, {"options": {"portal": "itdesk", "accounts_url": "https://accounts.zoho.eu/"},
                                   "client_secret": "eu-secret", "refresh_token": "1000.eu-refresh"}, "root")
    responses.post("https://accounts.zoho.eu/oauth/v2/token", json={"access_token": "x", "expires_in": 3600})
    responses.get(SDP_CLOUD_CHANGES, json={"changes": [], "response_status": [{"status_code": 2000}]})

    assert validate_connection(ItsmConnection.get())[0] is True
    assert "client_secret=eu-secret" in responses.calls[0].request.body


def test_naming_the_default_accounts_url_moves_no_secret(app):
    connection = _zoho()
    update_connection(connection, {"options": {"portal": "itdesk", "accounts_url": "https://accounts.zoho.com"}},
                      "root")
    assert ItsmConnection.get().client_secret == "zoho-secret"


@pytest.mark.parametrize("address, why", [("http://collector.example", "https://"),
                                          ("https://169.254.169.254", "metadata")])
def test_an_accounts_url_is_an_https_address_the_broker_may_reach(app, address, why):
    with pytest.raises(BadRequest) as refused:
        _zoho(options={"portal": "itdesk", "accounts_url": address})
    assert refused.value.extra["fields"]["options"].startswith("accounts_url: ")
    assert why in refused.value.extra["fields"]["options"]


def test_changing_the_kind_to_one_with_another_token_endpoint_needs_the_secrets_again(app):
    connection = create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "auth_method": "oauth",
                                    "client_id": "cid", "client_secret": "sn-client-secret"}, "root")
    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"kind": "jira", "options": {"cloud_id": "11111111"}}, "root")
    assert refused.value.extra["fields"] == {"client_secret": SECRET_AGAIN}
    assert ItsmConnection.get().kind == "servicenow"


def test_changing_the_kind_to_one_sending_its_secret_to_the_same_host_keeps_it(app):
    connection = create_connection({"name": "sdp", "kind": "sdp", "base_url": "https://sdp.example.com",
                                    "secret": "technician-key"}, "root")
    update_connection(connection, {"kind": "sdp_msp"}, "root")
    assert (ItsmConnection.get().kind, ItsmConnection.get().secret) == ("sdp_msp", "technician-key")


def test_the_admin_page_refuses_a_moved_accounts_url_without_the_secrets(as_admin, app):
    _zoho()
    answer = as_admin.post("/admin/policies/itsm/sdp", {
        "name": "sdp", "kind": "sdp_cloud", "enabled": "true", "base_url": "", "auth_method": "zoho_oauth",
        "username": "", "secret": "", "client_id": "1000.CID", "client_secret": "", "refresh_token": "",
        "token_url": "", "options": f"portal=itdesk\naccounts_url={COLLECTOR}", "timeout_seconds": "10"})

    assert answer.status_code == 400
    assert SECRET_AGAIN in answer.get_data(as_text=True)
    assert ItsmConnection.get().options == {"portal": "itdesk"}


def test_the_cli_refuses_a_moved_accounts_url_without_the_secrets(runner):
    with runner.app.app_context():
        _zoho()
    refused = runner.invoke(args=["itsm", "set", "sdp", f"option.accounts_url={COLLECTOR}"])
    saved = runner.invoke(args=["itsm", "set", "sdp", f"option.accounts_url={COLLECTOR}",
                                "client_secret=new-secret", "refresh_token=new-refresh"])

    assert refused.exit_code != 0 and SECRET_AGAIN in refused.output
    assert saved.exit_code == 0, saved.output
    with runner.app.app_context():
        assert ItsmConnection.get().options == {"portal": "itdesk", "accounts_url": COLLECTOR}


def _internal_sdp():
    return create_connection({"name": "sdp", "kind": "sdp", "base_url": SDP, "secret": "key",
                              "options": {"internal": "true", "module": "changes"}}, "root")


def test_taking_the_internal_mark_away_rechecks_the_saved_private_base_url(app, resolves_to):
    resolves_to("10.20.30.40")
    connection = _internal_sdp()

    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"options": {"internal": "false", "module": "changes"}}, "root")

    assert "private-network address" in refused.value.extra["fields"]["base_url"]
    assert ItsmConnection.get().options == {"internal": "true", "module": "changes"}


def test_taking_the_internal_mark_away_rechecks_the_saved_token_url(app, answers):
    answers("sdp.corp.test", "203.0.113.7")
    answers("tokens.corp.test", "192.168.1.5")
    connection = create_connection({"name": "corp", "kind": "servicenow", "base_url": "https://sdp.corp.test",
                                    "auth_method": "oauth", "client_id": "cid", "client_secret": "cs",
                                    "token_url": "https://tokens.corp.test/oauth_token.do",
                                    "options": {"internal": "true"}}, "root")

    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"options": {}}, "root")

    assert "private-network address" in refused.value.extra["fields"]["token_url"]
    assert ItsmConnection.get().options == {"internal": "true"}


def test_taking_the_internal_mark_away_from_a_public_connection_is_saved(app, resolves_to):
    resolves_to("203.0.113.7")
    connection = _internal_sdp()

    update_connection(connection, {"options": {"internal": "false", "module": "changes"}}, "root")

    assert ItsmConnection.get().options["internal"] == "false"


def test_the_cli_refuses_to_take_the_internal_mark_away_from_a_private_connection(runner, resolves_to):
    resolves_to("10.20.30.40")
    with runner.app.app_context():
        _internal_sdp()

    refused = runner.invoke(args=["itsm", "set", "sdp", "option.internal=false"])

    assert refused.exit_code != 0
    assert "base_url" in refused.output and "private-network address" in refused.output
    with runner.app.app_context():
        assert ItsmConnection.get().options["internal"] == "true"


def test_changing_the_kind_checks_a_saved_option_that_now_names_a_host(app):
    # accounts_url means nothing to on-premises ServiceDesk Plus, so it was saved unchecked; to Cloud it is where
    # the client secret is posted.
    connection = create_connection({"name": "sdp", "kind": "sdp", "base_url": SDP, "secret": "key",
                                    "options": {"accounts_url": "https://169.254.169.254"}}, "root")

    with pytest.raises(BadRequest) as refused:
        update_connection(connection, {"kind": "sdp_cloud", "auth_method": "zoho_oauth", "secret": "key"}, "root")

    assert "metadata" in refused.value.extra["fields"]["options"]
    assert ItsmConnection.get().kind == "sdp"
