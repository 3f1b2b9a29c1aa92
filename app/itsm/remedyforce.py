"""BMC Helix Remedyforce: a SOQL query on `BMCServiceDesk__Change_Request__c` through Salesforce's REST API.

The approval and requester fields of a change request are not confirmed on a live org, so every
field name is an option an org can correct (docs/connectors.md)."""
import re

from app.itsm.base import APPROVED, AUTH_OAUTH, REQUESTED, Connector, ItsmError, RemoteTicket, parse_timestamp

SALESFORCE_LOGIN = "https://login.salesforce.com"
DEFAULT_FIELDS = {
    "object": "BMCServiceDesk__Change_Request__c",
    "state_field": "BMCServiceDesk__FKStatus__r.Name",
    "approved_field": "BMCServiceDesk__Approved__c",
    "start_field": "BMCServiceDesk__Scheduled_Start_Date__c",
    "end_field": "BMCServiceDesk__Scheduled_End_Date__c",
    "requester_field": "BMCServiceDesk__FKInitiator__r.Username",
}
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
_NUMBER = re.compile(r"^[A-Za-z0-9-]{1,40}$")


def _path(record, dotted):
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


class RemedyforceConnector(Connector):
    """BMC Remedyforce change requests over Salesforce REST (SOQL)."""

    kind = "remedyforce"
    label = "BMC Remedyforce"
    auth_methods = (AUTH_OAUTH,)
    confirmed = False

    def required_settings(self):
        return [("client_id", "Connected app consumer key"), ("client_secret", "Connected app consumer secret")]

    def field(self, name):
        value = str(self.connection.option(name, DEFAULT_FIELDS[name]))
        if not _API_NAME.fullmatch(value):
            raise ItsmError(f"{self.describe()}: option {name} {value!r} is not a Salesforce field name")
        return value

    def default_token_url(self):
        return f"{self.base_url or SALESFORCE_LOGIN}/services/oauth2/token"

    def fetch_token(self):
        """(instance URL, access token): the session, cached until it nearly expires. The instance URL is the one
        the token endpoint answers with: the secrets went there, the session goes where it says."""
        answer = self.request_token("the OAuth token request", "check the connected app and grant",
                                    data=self.oauth_form())
        # Salesforce does not say how long a token lives; the session timeout is 2 h by default.
        return ((answer.get("instance_url") or self.base_url).rstrip("/"), answer["access_token"]), 3600

    def _query(self, soql, what):
        version = str(self.connection.option("api_version", "59.0"))

        def query():
            instance, token = self.access_token()
            return self.request("GET", f"{instance}/services/data/v{version}/query", what=what, params={"q": soql},
                                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        return self.with_token_renewed_once(query)

    def lookup(self, number):
        if not _NUMBER.fullmatch(number):
            return None
        names = {name: self.field(name) for name in DEFAULT_FIELDS}
        columns = ", ".join(["Id", "Name"] + [names[n] for n in DEFAULT_FIELDS if n != "object"])
        # `number` is letters, digits and dashes only (checked above), so quoting it is safe.
        answer = self._query(f"SELECT {columns} FROM {names['object']} WHERE Name = '{number}' LIMIT 1",
                             what=f"the lookup of {number}")
        record = self.first_record(answer, "records", f"the lookup of {number}")
        if record is None:
            return None
        approved = _path(record, names["approved_field"])
        return RemoteTicket(
            number=record.get("Name") or number,
            state=str(_path(record, names["state_field"]) or ""),
            approval=APPROVED if approved is True or str(approved).lower() == "true" else REQUESTED,
            window_start=parse_timestamp(_path(record, names["start_field"])),
            window_end=parse_timestamp(_path(record, names["end_field"])),
            requester=_path(record, names["requester_field"]),
            source=self.name,
        )

    def check(self):
        answer = self._query(f"SELECT Id FROM {self.field('object')} LIMIT 1", what="the settings check")
        if not isinstance(answer, dict) or "records" not in answer:
            raise ItsmError(f"{self.describe()} answered the query without records; check the instance")
        return f"{self.field('object')} readable"
