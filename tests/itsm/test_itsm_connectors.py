"""What every connector shares: Validate Settings names what is missing, the one ticket shape, honest docs."""
import re
from pathlib import Path

import pytest
import responses

from app.itsm import CONNECTOR_TYPES
from app.itsm.base import ItsmSettingsError
from app.itsm.models import ItsmConnection

DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors.md"

# For each kind and authentication method, what Validate Settings must ask for when nothing is set.
MISSING = {
    ("servicenow", "basic"): "Base URL (https://<instance>.service-now.com), User name, Password",
    ("servicenow", "oauth"): "Base URL (https://<instance>.service-now.com), OAuth client ID, OAuth client secret",
    ("jira", "api_token"): "Base URL (https://<site>.atlassian.net), Account e-mail, API token",
    ("jira", "oauth"): "OAuth client ID, OAuth client secret, Refresh token (offline_access), Cloud ID (option "
                       "cloud_id)",
    ("sdp", "technician_key"): "Base URL (https://sdp.example.com:8080), Technician key",
    ("sdp_msp", "technician_key"): "Base URL (https://sdp.example.com:8080), Technician key",
    ("sdp_cloud", "zoho_oauth"): "Zoho client ID, Zoho client secret, Zoho refresh token, Portal (option portal)",
    ("remedyforce", "oauth"): "Connected app consumer key, Connected app consumer secret",
}


def test_every_kind_and_authentication_method_is_covered():
    assert set(MISSING) == {(kind, method) for kind, connector in CONNECTOR_TYPES.items()
                            for method in connector.auth_methods}


@pytest.mark.parametrize("kind, method", list(MISSING))
def test_validate_settings_names_what_is_missing_before_calling_out(kind, method):
    connector = CONNECTOR_TYPES[kind](ItsmConnection(name="x", kind=kind, auth_method=method))

    with responses.RequestsMock():  # any HTTP call would fail the test
        with pytest.raises(ItsmSettingsError) as refused:
            connector.validate_settings()

    assert str(refused.value) == f"{connector.label} 'x' is missing: {MISSING[(kind, method)]}"


def _sections():
    """docs/connectors.md's connector sections: heading text by the kinds it names in backticks."""
    sections = {}
    for heading in re.findall(r"^## (.+)$", DOCS.read_text(), re.MULTILINE):
        for kind in re.findall(r"`([a-z_]+)`", heading):
            sections[kind] = heading
    return sections


@pytest.mark.parametrize("kind", list(CONNECTOR_TYPES))
def test_the_docs_say_which_connectors_could_not_be_confirmed(kind):
    heading = _sections()[kind]
    body = DOCS.read_text().split(f"## {heading}", 1)[1].split("\n## ", 1)[0]

    if CONNECTOR_TYPES[kind].confirmed:
        assert heading.endswith("— confirmed")
    else:
        assert heading.endswith("— partly unconfirmed")
        assert "not confirmed" in body.lower()
