"""Storing ITSM connections and "Validate Settings": the one service the CLI and the admin pages share.

Secrets (`secret`, `client_secret`, `refresh_token`) are write-only: a blank value
keeps the stored one, displays show only whether one is set, and the audit log
records which fields changed, never their values. What refers to a connection by
name (policy rules) follows a rename and may refuse a delete through the two
signals in app/events.py, so this module needs to know nothing of it.
"""
import re
from urllib.parse import urlsplit

from app import events
from app.audit import service as audit
from app.db import write_transaction
from app.egress import EgressRefused, check_url
from app.errors import BadRequest, Conflict
from app.fields import Field, clean_boolean, clean_choice, clean_text, clean_values as clean_fields
from app.itsm import CONNECTOR_TYPES, connector_for
from app.itsm.base import INTERNAL_OPTION, ItsmError
from app.itsm.models import ItsmConnection
from app.models import utcnow

MASK = "********"
RESERVED_NAMES = {"any", "broker"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _clean_name(value):
    text = value.strip()
    if not _NAME.fullmatch(text) or text.lower() in RESERVED_NAMES:
        raise ValueError("1–64 letters, digits, '.', '_' or '-', starting with a letter or digit; "
                         "not 'any' or 'broker'")
    return text


def _clean_url(value):
    text = value.strip().rstrip("/")
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("an https:// address, e.g. https://acme.service-now.com")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("use https:// (http:// only for a test server on this machine): credentials travel with it")
    return text


def _clean_secret(value):
    if len(value) > 8000:
        raise ValueError("at most 8000 characters")
    return value.strip()


def _clean_timeout(value):
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError("a whole number of seconds") from None
    if not 1 <= number <= 60:
        raise ValueError("between 1 and 60 seconds")
    return number


def parse_options(value):
    """`key=value` pairs, one per line (or separated by ';'), as a dict; a dict passes through."""
    if isinstance(value, dict):
        return {str(k).strip(): str(v).strip() for k, v in value.items() if str(k).strip()}
    options = {}
    for part in re.split(r"[\n;]", value or ""):
        if not part.strip():
            continue
        key, separator, item = part.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"{part.strip()!r} is not key=value")
        options[key.strip()] = item.strip()
    return options


def format_options(options):
    return "\n".join(f"{key}={value}" for key, value in sorted((options or {}).items()))


FIELDS = (
    Field("name", "Name", _clean_name, help="How rules refer to this connection"),
    Field("kind", "ITSM", clean_choice(CONNECTOR_TYPES)),
    Field("enabled", "Enabled", clean_boolean),
    Field("base_url", "Base URL", _clean_url,
          help="ServiceNow: https://<instance>.service-now.com; Jira: https://<site>.atlassian.net; "
               "ServiceDesk Plus: https://sdp.example.com:8080 "
               "(Cloud: blank for sdpondemand.manageengine.com); "
               "Remedyforce: your My Domain URL, or blank for login.salesforce.com"),
    Field("auth_method", "Authentication", clean_text(32),
          help="servicenow: basic or oauth; jira: api_token or oauth; sdp and sdp_msp: technician_key; "
               "sdp_cloud: zoho_oauth; remedyforce: oauth"),
    Field("username", "User name / account e-mail", clean_text(255)),
    Field("secret", "Password / API token / technician key", _clean_secret, secret=True),
    Field("client_id", "OAuth client ID", clean_text(255)),
    Field("client_secret", "OAuth client secret", _clean_secret, secret=True),
    Field("refresh_token", "OAuth refresh token", _clean_secret, secret=True),
    Field("token_url", "Token URL", _clean_url, help="Blank for the ITSM's usual token endpoint"),
    Field("options", "Options", parse_options,
          help="key=value per line: jira cloud_id, start_field, end_field, api_version; sdp module, "
               "portal, accounts_url; remedyforce object and field names, api_version"),
    Field("timeout_seconds", "Time-out (seconds)", _clean_timeout),
)
FIELDS_BY_NAME = {field.name: field for field in FIELDS}
SECRET_FIELDS = tuple(field.name for field in FIELDS if field.secret)


def clean_values(raw):
    """Check raw values by field name; returns cleaned values or raises BadRequest with `fields`."""
    return clean_fields(FIELDS_BY_NAME, raw, "Invalid ITSM connection", kept_types=(str, dict))


def _check_auth_method(values):
    connector = CONNECTOR_TYPES[values["kind"]]
    method = values.get("auth_method") or connector.auth_methods[0]
    if method not in connector.auth_methods:
        message = f"for {connector.label} choose {', '.join(connector.auth_methods)}"
        raise BadRequest("Invalid ITSM connection", f"auth_method: {message}",
                         extra={"fields": {"auth_method": message}})
    values["auth_method"] = method


URL_FIELDS = ("base_url", "token_url")
SECRET_AGAIN = "Enter the secret again: it is only sent to the host it was entered for"


def _refused(field, message):
    return BadRequest("Invalid ITSM connection", f"{field}: {message}", extra={"fields": {field: message}})


def _check_destinations(values, kind, internal):
    """Each address entered (the URL fields, and the options of `kind` naming a host: Connector.host_options)
    must not be, or resolve to, a link-local or metadata address, nor a private one unless internal. A host option
    is kept as an http(s) URL, as the URL fields are."""
    for name in URL_FIELDS:
        if values.get(name):
            try:
                check_url(values[name], internal=internal)
            except EgressRefused as error:
                raise _refused(name, str(error)) from None
    options = values.get("options") or {}
    for name in CONNECTOR_TYPES[kind].host_options:
        if options.get(name):
            try:
                options[name] = _clean_url(options[name])
                check_url(options[name], internal=internal)
            except ValueError as error:  # EgressRefused is one
                raise _refused("options", f"{name}: {error}") from None


def _check_saved_destinations(connection, values, kind, internal):
    """The addresses saved before this change and kept by it, checked again when the change takes the internal
    mark away (a private address stays only on an internal connection) or changes the kind (which decides the
    options naming a host): what is saved must pass the checks a new entry would."""
    if internal == _internal({}, connection) and kind == connection.kind:
        return
    kept = {name: getattr(connection, name) for name in URL_FIELDS if name not in values}
    if "options" not in values:
        kept["options"] = dict(connection.options or {})
    _check_destinations(kept, kind, internal)


def _secret_destinations(connection):
    """Where `connection`'s stored secrets may be sent (Connector.secret_destinations); None for an unknown kind."""
    connector = CONNECTOR_TYPES.get(connection.kind)
    return None if connector is None else connector(connection).secret_destinations()


def _check_secrets_entered_again(connection, values):
    """A change that moves where the stored secrets may go (the base or token URL, an option naming a host, the
    kind and with it its default addresses) must carry each stored secret again: a secret goes only where it was
    entered (docs/security.md)."""
    changed = ItsmConnection(**{**{field.name: getattr(connection, field.name) for field in FIELDS}, **values})
    if _secret_destinations(changed) == _secret_destinations(connection):
        return
    missing = [name for name in SECRET_FIELDS if getattr(connection, name) and not values.get(name)]
    if missing:
        raise BadRequest("Invalid ITSM connection", f"{missing[0]}: {SECRET_AGAIN}",
                         extra={"fields": {name: SECRET_AGAIN for name in missing}})


def _internal(values, connection=None):
    options = values.get("options", connection.options if connection is not None else {})
    return str((options or {}).get(INTERNAL_OPTION, "")).strip().lower() in ("true", "yes", "1", "on")


def find_connection(name):
    return ItsmConnection.get_or_none(ItsmConnection.name == name)


def create_connection(raw, actor):
    """Store a new connection; returns it. Conflict when the name is taken."""
    values = clean_values({key: value for key, value in raw.items() if value not in (None,)})
    for required in ("name", "kind"):
        if not values.get(required):
            raise BadRequest("Invalid ITSM connection", f"{required}: required",
                             extra={"fields": {required: "required"}})
    _check_auth_method(values)
    _check_destinations(values, values["kind"], _internal(values))
    with write_transaction():
        if find_connection(values["name"]) is not None:
            raise Conflict(f"An ITSM connection named {values['name']!r} already exists")
        connection = ItsmConnection.create(**values)
        audit.record("itsm_connection_create", actor, "itsm_connection", connection.name,
                     {"kind": connection.kind, "fields": sorted(values), "internal": _internal(values)})
    return connection


def update_connection(connection, raw, actor):
    """Change a connection; blank secrets keep the stored ones. Returns it re-read."""
    raw = {key: value for key, value in raw.items() if not (key in SECRET_FIELDS and not str(value or "").strip())}
    values = clean_values(raw)
    merged = {"kind": values.get("kind", connection.kind), "auth_method": values.get("auth_method",
                                                                                     connection.auth_method)}
    _check_auth_method(merged)
    values["auth_method"] = merged["auth_method"]
    internal = _internal(values, connection)
    _check_destinations(values, merged["kind"], internal)
    _check_saved_destinations(connection, values, merged["kind"], internal)
    _check_secrets_entered_again(connection, values)
    with write_transaction():
        if "name" in values and values["name"] != connection.name and find_connection(values["name"]) is not None:
            raise Conflict(f"An ITSM connection named {values['name']!r} already exists")
        changed = sorted(name for name, value in values.items() if getattr(connection, name) != value)
        values["updated_at"] = utcnow()
        ItsmConnection.update(**values).where(ItsmConnection.id == connection.id).execute()
        if "name" in changed:
            events.connection_renamed.send(connection, new_name=values["name"])
        connection = ItsmConnection.get_by_id(connection.id)
        audit.record("itsm_connection_update", actor, "itsm_connection", connection.name,
                     {"fields": changed, "internal": internal})
    return connection


def delete_connection(connection, actor):
    """Delete a connection, unless a `connection_deleting` receiver refuses (Conflict saying why)."""
    with write_transaction():
        events.connection_deleting.send(connection)
        ItsmConnection.delete().where(ItsmConnection.id == connection.id).execute()
        audit.record("itsm_connection_delete", actor, "itsm_connection", connection.name, {"kind": connection.kind})


def validate_connection(connection):
    """"Validate Settings": (ok, message); the outcome is kept on the connection."""
    try:
        message = connector_for(connection).validate_settings()
        ok = True
    except (ItsmError, ValueError) as error:
        message, ok = f"Validation failed: {error}", False
    with write_transaction():
        ItsmConnection.update(last_validated_at=utcnow(), last_validation=message[:2000]).where(
            ItsmConnection.id == connection.id).execute()
    return ok, message


def masked(connection):
    """Every field for display: secrets as set or not, options as key=value text."""
    shown = {}
    for field in FIELDS:
        value = getattr(connection, field.name)
        if field.secret:
            value = MASK if value else ""
        elif field.name == "options":
            value = format_options(value)
        shown[field.name] = value
    return shown
