"""ManageEngine ServiceDesk Plus (API v3): on-premises and MSP with a technician key, Cloud with Zoho OAuth.

A lookup reads one change (or request, option `module=requests`) by the reference's digits. The change's
approval and requester fields, and MSP behaving as on-premises, are not confirmed (docs/connectors.md)."""
import json
import re
from urllib.parse import quote

from app.itsm.base import (
    APPROVED, NOT_REQUESTED, REJECTED, REQUESTED, Connector, ItsmError, RemoteTicket, from_epoch_millis,
)

ACCEPT = "application/vnd.manageengine.sdp.v3+json"
AUTH_TECHNICIAN_KEY = "technician_key"
AUTH_ZOHO_OAUTH = "zoho_oauth"
ZOHO_ACCOUNTS = "https://accounts.zoho.com"
SDP_CLOUD = "https://sdpondemand.manageengine.com"
MODULES = {"changes": "change", "requests": "request"}
REQUESTER_FIELDS = ("requester", "change_requester", "change_owner")


def _name(value):
    return (value or {}).get("name", "") if isinstance(value, dict) else (value or "")


def _approval(name):
    text = (name or "").strip().lower()
    if not text:
        return NOT_REQUESTED
    if text.startswith("approved"):
        return APPROVED
    if text.startswith(("rejected", "denied")):
        return REJECTED
    return REQUESTED


class ServiceDeskPlusConnector(Connector):
    """ServiceDesk Plus on-premises: technician key (`authtoken` header)."""

    kind = "sdp"
    label = "ServiceDesk Plus"
    auth_methods = (AUTH_TECHNICIAN_KEY,)
    confirmed = False

    def required_settings(self):
        return [("base_url", "Base URL (https://sdp.example.com:8080)"), ("secret", "Technician key")]

    @property
    def module(self):
        module = self.connection.option("module", "changes")
        if module not in MODULES:
            raise ItsmError(f"{self.describe()}: option module must be changes or requests, not {module!r}")
        return module

    def api_root(self):
        return f"{self.base_url}/api/v3"

    def _headers(self):
        return {"Accept": ACCEPT, "authtoken": self.connection.secret}

    def lookup(self, number):
        digits = re.sub(r"\D", "", number)
        if not digits:
            return None
        module = self.module
        answer = self.with_token_renewed_once(lambda: self.request(
            "GET", f"{self.api_root()}/{module}/{quote(digits)}", what=f"the lookup of {number}", not_found_ok=True,
            headers=self._headers()))
        if answer is None:
            return None
        record = answer.get(MODULES[module]) if isinstance(answer, dict) else None
        if not isinstance(record, dict):
            return None
        requester = next((record[f] for f in REQUESTER_FIELDS if isinstance(record.get(f), dict)), {})
        display_id = record.get("display_id")
        shown = display_id.get("display_value") if isinstance(display_id, dict) else display_id
        return RemoteTicket(
            number=str(shown or record.get("id") or digits),
            state=_name(record.get("status")),
            approval=_approval(_name(record.get("approval_status"))),
            window_start=from_epoch_millis((record.get("scheduled_start_time") or {}).get("value")),
            window_end=from_epoch_millis((record.get("scheduled_end_time") or {}).get("value")),
            requester=requester.get("email_id") or requester.get("name"),
            source=self.name,
        )

    def check(self):
        list_info = json.dumps({"list_info": {"row_count": 1}})
        answer = self.with_token_renewed_once(lambda: self.request(
            "GET", f"{self.api_root()}/{self.module}", what="the settings check", params={"input_data": list_info},
            headers=self._headers()))
        if not isinstance(answer, dict) or "response_status" not in answer:
            raise ItsmError(f"{self.describe()} answered without a response status; check the base URL")
        return f"{self.module} readable"


class ServiceDeskPlusMspConnector(ServiceDeskPlusConnector):
    """ServiceDesk Plus MSP on-premises: the same v3 reads with a technician key."""

    kind = "sdp_msp"
    label = "ServiceDesk Plus MSP"


class ServiceDeskPlusCloudConnector(ServiceDeskPlusConnector):
    """ServiceDesk Plus Cloud: Zoho OAuth with a stored refresh token; the option `portal` names the portal."""

    kind = "sdp_cloud"
    label = "ServiceDesk Plus Cloud"
    auth_methods = (AUTH_ZOHO_OAUTH,)
    host_options = ("accounts_url",)  # Zoho's accounts server for the region (accounts.zoho.eu, ...)

    def required_settings(self):
        return [("client_id", "Zoho client ID"), ("client_secret", "Zoho client secret"),
                ("refresh_token", "Zoho refresh token"), ("portal", "Portal (option portal)")]

    def api_root(self):
        base = self.base_url or SDP_CLOUD
        return f"{base}/app/{quote(str(self.connection.option('portal')))}/api/v3"

    def default_token_url(self):
        return f"{self.connection.option('accounts_url', ZOHO_ACCOUNTS)}/oauth/v2/token"

    def secret_destinations(self):
        return super().secret_destinations() | {self.base_url or SDP_CLOUD}

    def _headers(self):
        return {"Accept": ACCEPT, "Authorization": f"Zoho-oauthtoken {self.access_token()}"}

    def fetch_token(self):
        connection = self.connection
        # Sent as a form body, not the query string Zoho's examples use, so no
        # secret ever appears in a URL (or a log line that prints one).
        answer = self.request_token("the Zoho token refresh", "check the client and the refresh token", data={
            "grant_type": "refresh_token", "client_id": connection.client_id,
            "client_secret": connection.client_secret, "refresh_token": connection.refresh_token})
        return answer["access_token"], answer.get("expires_in")
