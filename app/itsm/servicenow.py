"""ServiceNow: one Table API read per lookup (the number's prefix picks the table), basic auth or OAuth.

A lookup asks `sysparm_query=number=<reference>`, and the reference is what a requester wrote, found by the
rule's pattern (a custom one may match anything). ServiceNow's encoded query has no escape for `^` inside a
value, so `^`, `^OR` or `^NQ` in a reference would add terms of the requester's choosing (`^NQ` ORs in a whole
second query: some other approved change), and a value starting `javascript:` is run as script by the
instance. Encoding cannot help, so only a record number is looked up: letters, digits, `-`, `_` and `.`, at
most 40 characters (the number field's length), as any prefix an instance is given is written."""
import re
from urllib.parse import quote

from app.itsm.base import AUTH_OAUTH, Connector, ItsmError, RemoteTicket, parse_timestamp

TABLES_BY_PREFIX = {
    "PRJTASK": "pm_project_task", "SCTASK": "sc_task", "CTASK": "change_task", "RITM": "sc_req_item",
    "TASK": "task", "INC": "incident", "CHG": "change_request", "REQ": "sc_request", "PRB": "problem",
    "PRJ": "pm_project",
}
REQUESTER_FIELDS = ("requested_by.user_name", "requested_for.user_name", "opened_by.user_name")
FIELDS = ("sys_id", "number", "state", "approval", "start_date", "end_date") + REQUESTER_FIELDS

AUTH_BASIC = "basic"
# A ServiceNow record number as a lookup may put it into sysparm_query (see the module's docstring).
RECORD_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}")


def table_for(number):
    """The ServiceNow table a number lives in, by its prefix (longest first); `task` otherwise."""
    text = number.upper()
    for prefix in sorted(TABLES_BY_PREFIX, key=len, reverse=True):
        if text.startswith(prefix) and text[len(prefix):].isdigit():
            return TABLES_BY_PREFIX[prefix]
    return "task"


def _value(record, field, key="value"):
    item = record.get(field)
    if isinstance(item, dict):
        return item.get(key) or ""
    return item or ""


class ServiceNowConnector(Connector):
    """ServiceNow's Table API with basic auth or an OAuth token.

    The OAuth grant is refresh-token when one is stored, else password, else client credentials."""

    kind = "servicenow"
    label = "ServiceNow"
    auth_methods = (AUTH_BASIC, AUTH_OAUTH)

    def required_settings(self):
        required = [("base_url", "Base URL (https://<instance>.service-now.com)")]
        if self.connection.auth_method == AUTH_OAUTH:
            return required + [("client_id", "OAuth client ID"), ("client_secret", "OAuth client secret")]
        return required + [("username", "User name"), ("secret", "Password")]

    def default_token_url(self):
        return f"{self.base_url}/oauth_token.do" if self.base_url else ""

    def fetch_token(self):
        answer = self.request_token("the OAuth token request", "check the OAuth client and grant",
                                    data=self.oauth_form(password_grant=True))
        return answer["access_token"], answer.get("expires_in")

    def _read(self, table, params, what):
        url = f"{self.base_url}/api/now/table/{quote(table)}"
        return self.with_token_renewed_once(lambda: self.request("GET", url, what=what, params=params,
                                                                 **self.oauth_auth()))

    def lookup(self, number):
        if not RECORD_NUMBER.fullmatch(number):
            raise ItsmError(f"{self.describe()}: the reference is no ServiceNow record number (letters, digits, "
                            "'-', '_' and '.', at most 40 characters), so it was not looked up")
        table = table_for(number)
        answer = self._read(table, {
            "sysparm_query": f"number={number}", "sysparm_limit": "1", "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true", "sysparm_fields": ",".join(FIELDS),
        }, what=f"the lookup of {number} in {table}")
        record = self.first_record(answer, "result", f"the lookup of {number}")
        if record is None:
            return None
        approval = _value(record, "approval").strip().lower()
        requester = next((_value(record, field) for field in REQUESTER_FIELDS if _value(record, field)), None)
        return RemoteTicket(
            number=_value(record, "number", "display_value") or _value(record, "number") or number,
            state=_value(record, "state", "display_value") or _value(record, "state"),
            approval=approval if approval else "",
            window_start=parse_timestamp(_value(record, "start_date")),
            window_end=parse_timestamp(_value(record, "end_date")),
            requester=requester, source=self.name,
        )

    def check(self):
        answer = self._read("change_request", {"sysparm_limit": "1", "sysparm_fields": "sys_id"},
                            what="the settings check")
        if not isinstance(answer, dict) or "result" not in answer:
            raise ItsmError(f"{self.describe()} answered without a Table API result; check the base URL")
        return "Table API readable"
