"""Jira Service Management: the issue (REST v3, or v2 for Data Center) and the final decision of its last approval step.

The window lives in site-specific custom fields (options `start_field`, `end_field`). With OAuth (3LO),
Atlassian rotates refresh tokens, so each new one is saved on the connection."""
from urllib.parse import quote

from app.itsm.base import (
    APPROVED, AUTH_OAUTH, NOT_REQUESTED, REJECTED, REQUESTED, Connector, RemoteTicket, parse_timestamp,
)

AUTH_API_TOKEN = "api_token"
ATLASSIAN_TOKEN_URL = "https://auth.atlassian.com/oauth/token"
ATLASSIAN_API = "https://api.atlassian.com/ex/jira"
DECISIONS = {"approved": APPROVED, "declined": REJECTED, "pending": REQUESTED}


class JiraConnector(Connector):
    """Jira Service Management Cloud or Data Center over REST."""

    kind = "jira"
    label = "Jira Service Management"
    auth_methods = (AUTH_API_TOKEN, AUTH_OAUTH)

    def required_settings(self):
        if self.connection.auth_method == AUTH_OAUTH:
            return [("client_id", "OAuth client ID"), ("client_secret", "OAuth client secret"),
                    ("refresh_token", "Refresh token (offline_access)"), ("cloud_id", "Cloud ID (option cloud_id)")]
        return [("base_url", "Base URL (https://<site>.atlassian.net)"), ("username", "Account e-mail"),
                ("secret", "API token")]

    def default_token_url(self):
        return ATLASSIAN_TOKEN_URL

    def secret_destinations(self):
        return super().secret_destinations() | {ATLASSIAN_API}

    @property
    def api_root(self):
        if self.connection.auth_method == AUTH_OAUTH:
            return f"{ATLASSIAN_API}/{quote(str(self.connection.option('cloud_id')))}"
        return self.base_url

    def fetch_token(self):
        connection = self.connection
        answer = self.request_token("the OAuth token refresh", "the refresh token may have expired",
                                    json={"grant_type": "refresh_token", "client_id": connection.client_id,
                                          "client_secret": connection.client_secret,
                                          "refresh_token": connection.refresh_token})
        rotated = answer.get("refresh_token")
        if rotated and rotated != connection.refresh_token:
            # Atlassian disables the refresh token just used: keep the new one.
            type(connection).update(refresh_token=rotated).where(type(connection).id == connection.id).execute()
            connection.refresh_token = rotated
        return answer["access_token"], answer.get("expires_in")

    def _api_version(self):
        return str(self.connection.option("api_version", "3"))

    def lookup(self, number):
        key = number.upper()
        start_field, end_field = self.connection.option("start_field"), self.connection.option("end_field")
        fields = ["status", "reporter", "summary"] + [f for f in (start_field, end_field) if f]
        issue = self.with_token_renewed_once(lambda: self.request(
            "GET", f"{self.api_root}/rest/api/{self._api_version()}/issue/{quote(key)}", what=f"the lookup of {key}",
            not_found_ok=True, params={"fields": ",".join(fields)}, **self.oauth_auth()))
        if issue is None:
            return None
        values = issue.get("fields") or {}
        reporter = values.get("reporter") or {}
        approvals = self.with_token_renewed_once(lambda: self.request(
            "GET", f"{self.api_root}/rest/servicedeskapi/request/{quote(key)}/approval",
            what=f"the approvals of {key}", not_found_ok=True, **self.oauth_auth()))
        return RemoteTicket(
            number=issue.get("key") or key,
            state=(values.get("status") or {}).get("name", ""),
            approval=self._approval(approvals),
            window_start=parse_timestamp(values.get(start_field)) if start_field else None,
            window_end=parse_timestamp(values.get(end_field)) if end_field else None,
            requester=reporter.get("emailAddress") or reporter.get("name") or reporter.get("accountId"),
            source=self.name,
        )

    @staticmethod
    def _approval(answer):
        steps = (answer or {}).get("values") or []
        if not steps:
            return NOT_REQUESTED
        return DECISIONS.get(str(steps[-1].get("finalDecision", "")).lower(), REQUESTED)

    def check(self):
        me = self.with_token_renewed_once(lambda: self.request(
            "GET", f"{self.api_root}/rest/api/{self._api_version()}/myself", what="the settings check",
            **self.oauth_auth()))
        who = me.get("emailAddress") or me.get("displayName") or me.get("name") if isinstance(me, dict) else None
        return f"signed in as {who}" if who else "signed in"
