"""The integration settings record (`Default`): its fields, checked the same for the CLI and the admin page."""
import peewee

from app import contract
from app.audit import service as audit
from app.db import is_sqlite, write_transaction
from app.egress import EgressRefused, check_url
from app.epm import tokens
from app.epm.records import statuses
from app.epm.hosts import host_warnings as pmc_host_warnings, validate_host
from app.errors import BadRequest, Conflict
from app.fields import Field, clean_boolean, clean_choice, clean_text, clean_values as clean_fields
from app.models import CONFIGURATION_VERSION, Configuration, utcnow

MASK = "********"
# Fields that make a different set of EPM credentials: a change deletes the stored access tokens.
EPM_CREDENTIAL_FIELDS = {"pmc_host", "client_id", "client_secret", "token_path", "token_scope"}
# Secret field -> the fields that decide where it is sent: a change of those must carry the secret again, so a
# stored secret only ever goes to the host it was entered for.
SECRET_DESTINATIONS = {"client_secret": ("pmc_host", "token_path"), "smtp_password": ("smtp_host", "smtp_port")}
SECRET_AGAIN = {"client_secret": "Enter the client secret again: it is only sent to the host it was entered for",
                "smtp_password": "Enter the SMTP password again: it is only sent to the server it was entered for"}
# Host field -> the setting that marks it as on the organisation's own network, allowing private addresses.
INTERNAL_MARKS = {"pmc_host": "epm_internal", "smtp_host": "smtp_internal"}


def clean_pmc_host(value):
    """A bare host name (the contract's form) or a full http(s) URL; empty clears it. Where it may lead is
    checked with the record's epm_internal mark (`_check_destinations`)."""
    if not value.strip():
        return ""
    return validate_host(value)


def _clean_secret(value):
    if len(value) > 4000:
        raise ValueError("at most 4000 characters")
    return value


def _clean_ticket_type(value):
    ticket_type = contract.find_ticket_type(value)
    if ticket_type is None:
        choices = ", ".join(t.table for t in contract.TICKET_TYPES.values())
        raise ValueError(f"unknown ticket type {value.strip()!r}; choose one of {choices}")
    return ticket_type.table


def _clean_active_states(value):
    labels = [label.strip() for label in value.split(",") if label.strip()]
    if not labels:
        raise ValueError("name at least one state")
    by_casefold = {label.casefold(): label for label in contract.ALL_STATE_LABELS}
    unknown = [label for label in labels if label.casefold() not in by_casefold]
    if unknown:
        raise ValueError(f"unknown state {unknown[0]!r}; states are {', '.join(contract.ALL_STATE_LABELS)}")
    return ", ".join(dict.fromkeys(by_casefold[label.casefold()] for label in labels))


def _clean_statuses(value):
    named = statuses(value)
    if not named:
        raise ValueError("name at least one status, comma-separated")
    text = ", ".join(named)
    if len(text) > 255:
        raise ValueError("at most 255 characters")
    return text


def _clean_path(value):
    text = value.strip()
    if not text.startswith("/") or any(c.isspace() for c in text):
        raise ValueError("a path starting with /, without spaces")
    return text


def _clean_whole_number(low, high):
    def clean(value):
        text = str(value).strip()
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"a whole number from {low} to {high}") from None
        if not low <= number <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return number
    return clean


def _clean_smtp_host(value):
    text = value.strip()
    if len(text) > 255 or any(c.isspace() or c in "/@" for c in text):
        raise ValueError("a host name or address, without spaces, scheme or path")
    return text


def _clean_mail_from(value):
    from email.utils import parseaddr

    text = value.strip()
    if not text:
        return ""
    _name, address = parseaddr(text)
    if len(text) > 254 or any(c in text for c in "\r\n") or "@" not in address or " " in address:
        raise ValueError("an e-mail address, optionally with a name: JIT Broker <jit@example.com>")
    return text


def _clean_webhook_url(value):
    from urllib.parse import urlparse

    text = value.strip()
    if not text:
        return ""
    parsed = urlparse(text)
    if parsed.scheme not in ("https", "http") or not parsed.hostname or any(c.isspace() for c in text):
        raise ValueError("an https:// URL (the incoming-webhook address Slack or Teams gives)")
    try:
        port = parsed.port
    except ValueError:  # not a number, or past 65535
        port = 0
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("a port from 1 to 65535 after the host name, or none (https: 443)")
    if len(text) > 2000:
        raise ValueError("at most 2000 characters")
    try:
        check_url(text)
    except EgressRefused as error:
        raise ValueError(str(error)) from None
    return text


FIELDS = (
    Field("pmc_host", "PMC Service Host Name", clean_pmc_host,
          help="The tenant host with the -services suffix, e.g. acme-services.pm.beyondtrustcloud.com"),
    Field("tenant_id", "Tenant ID", clean_text(100)),
    Field("client_id", "Client ID", clean_text(255)),
    Field("client_secret", "Client Secret", _clean_secret, secret=True),
    Field("ticket_type", "Ticket Type", _clean_ticket_type,
          help="incident, change_request, sc_task or sc_req_item; affects new requests only"),
    Field("active_states", "Active States", _clean_active_states,
          help="Comma-separated state labels in which approve and deny are allowed"),
    Field("default_short_description", "Default Short Description", clean_text(160)),
    Field("default_assignment_group", "Default Assignment Group", clean_text(100)),
    Field("default_category", "Default Category", clean_text(100)),
    Field("auto_close", "Auto-close", clean_boolean,
          help="Close the ticket once EPM has finalized the decision"),
    Field("token_path", "Token Path", _clean_path),
    Field("token_auth_method", "Token Client Authentication", clean_choice(contract.TOKEN_AUTH_METHODS),
          help=f"{contract.TOKEN_AUTH_POST} (EPM's documented form: credentials in the body) or "
               f"{contract.TOKEN_AUTH_BASIC} (HTTP Basic)"),
    Field("token_scope", "Token Scope", clean_text(255),
          help=f"Empty sends no scope; EPM's is {contract.EPM_TOKEN_SCOPE}"),
    Field("application_decision_path", "Application Access Decision Path", _clean_path),
    Field("admin_decision_path", "Admin Access Decision Path", _clean_path),
    Field("admin_once_duration", "Admin Access \"Once\" Duration Value", clean_text(32)),
    Field("epm_internal", "EPM Is Internal", clean_boolean,
          help="Allow a private-network address for the PMC host (EPM is normally a cloud service); audited"),
    Field("epm_approved_statuses", "EPM Statuses Meaning Approved", _clean_statuses,
          help="Comma-separated accessDecision.status values (any letter case) read as approved"),
    Field("epm_denied_statuses", "EPM Statuses Meaning Denied", _clean_statuses,
          help="Comma-separated accessDecision.status values read as denied; any other status is undecided"),
    Field("smtp_host", "SMTP Server", _clean_smtp_host,
          help="Mail server for ticket notifications; empty sends no e-mail"),
    Field("smtp_port", "SMTP Port", _clean_whole_number(1, 65535), help="587 with STARTTLS, 25 without"),
    Field("smtp_username", "SMTP User Name", clean_text(255), help="Empty: send without signing in"),
    Field("smtp_password", "SMTP Password", _clean_secret, secret=True),
    Field("smtp_starttls", "SMTP STARTTLS", clean_boolean,
          help="Encrypt the connection with STARTTLS before signing in"),
    Field("smtp_internal", "SMTP Server Is Internal", clean_boolean,
          help="Allow a private-network address for the mail server (a relay on your own network); audited"),
    Field("mail_from", "Mail From", _clean_mail_from, help="Sender address, e.g. JIT Broker <jit@example.com>"),
    Field("notify_webhook_url", "Notification Webhook URL", _clean_webhook_url, secret=True,
          help="Slack or Teams incoming-webhook URL; receives {\"text\": ...}. Empty sends none"),
    Field("sla_minutes", "Reminder After (minutes)", _clean_whole_number(0, 525600),
          help="Remind approvers once when a ticket waits this long; 0 turns reminders off"),
    Field("retention_incoming_days", "Keep Incoming Requests (days)", _clean_whole_number(0, 36500),
          help="Deliveries older than this are purged unless their ticket is open; 0 keeps them"),
    Field("retention_outbound_days", "Keep Outbound Call Logs (days)", _clean_whole_number(0, 36500),
          help="0 keeps them"),
    Field("retention_closed_ticket_days", "Keep Closed Tickets (days)", _clean_whole_number(0, 36500),
          help="Closed or canceled tickets, and expired ones, are purged this long after closing or expiring; "
               "0 keeps them"),
    Field("retention_app_log_days", "Keep Application Log Records (days)", _clean_whole_number(0, 36500),
          help="0 keeps them"),
    Field("debug_logging", "Debug Logging", clean_boolean, help="Log at DEBUG level (secrets stay masked)"),
    Field("allow_self_approval", "Allow Self-Approval", clean_boolean,
          help="Let an approver approve a request they made themselves (small teams only; refused when off)"),
    Field("local_sign_in_admins_only", "Local Sign-In for Admins Only", clean_boolean,
          help="With sign-in through the identity provider: only admins may still sign in with a local password "
               "(break-glass accounts)"),
)
FIELDS_BY_NAME = {field.name: field for field in FIELDS}


def clean_values(raw):
    """Check raw values by field name; returns cleaned values or raises BadRequest with `fields`."""
    return clean_fields(FIELDS_BY_NAME, raw, "Invalid configuration")


def _check_statuses_differ(record):
    """A status meaning both approved and denied would leave EPM's decision unreadable: refused."""
    approved = {status.casefold() for status in statuses(record.epm_approved_statuses)}
    both = [status for status in statuses(record.epm_denied_statuses) if status.casefold() in approved]
    if both:
        message = f"{both[0]!r} is also an approved status; a status means one decision"
        raise BadRequest("Invalid configuration", f"epm_denied_statuses: {message}",
                         extra={"fields": {"epm_denied_statuses": message}})


def _check_secret_entered_again(record, cleaned):
    """A change of where a stored secret goes must carry the secret again."""
    for secret, destinations in SECRET_DESTINATIONS.items():
        moved = [name for name in destinations if name in cleaned and cleaned[name] != getattr(record, name)]
        if moved and getattr(record, secret) and not cleaned.get(secret):
            message = SECRET_AGAIN[secret]
            raise BadRequest("Invalid configuration", f"{secret}: {message}", extra={"fields": {secret: message}})


def _check_destinations(record, cleaned):
    """A host saved, or a host whose internal mark is taken away, must not be or resolve to a link-local or
    cloud metadata address, nor a private one unless marked internal. Checked again on each connection."""
    for name, mark in INTERNAL_MARKS.items():
        if name not in cleaned and mark not in cleaned:
            continue
        host = cleaned.get(name, getattr(record, name))
        try:
            check_url(host, internal=cleaned.get(mark, getattr(record, mark)))
        except EgressRefused as error:
            raise BadRequest("Invalid configuration", f"{name}: {error}",
                             extra={"fields": {name: str(error)}}) from None


def _shown(field, value):
    return (MASK if value else "") if field.secret else value


class ConfigurationChanged(Conflict):
    """Values entered on a page read at one version of the configuration, saved after it changed: nothing saved."""


def versioned_configuration():
    """The `Default` record with its version (`configuration_version`, moved by the database on every change of
    the row however it is made), read in one statement. A page shows the record and carries the version."""
    return _with_version().get()


def _with_version():
    Configuration.default()  # created with its defaults when missing
    version = peewee.SQL(f'"{CONFIGURATION_VERSION}"').alias("configuration_version")
    return Configuration.select(Configuration, version).where(Configuration.name == Configuration.DEFAULT_NAME)


def _locked_configuration():
    """The `Default` record with its version, its row locked until the transaction ends (PostgreSQL; SQLite's
    write transaction holds the database's write lock already): no other change lands between reading the
    record and saving it."""
    query = _with_version()
    return (query if is_sqlite() else query.for_update()).get()


def update_configuration(raw, actor=None, source_address=None, expected_version=None):
    """Check and save values on the Default record; returns (record, warnings); changes are audited, secrets masked.

    `expected_version`: the version the values were entered against (the configuration page's form carries it).
    When the record has changed since, ConfigurationChanged is raised and nothing is saved, so a page loaded
    before another admin's (or `jitbroker config set`'s) change cannot put the old values back."""
    cleaned = clean_values(raw)
    with write_transaction():
        record = _locked_configuration()
        if expected_version is not None and record.configuration_version != expected_version:
            raise ConfigurationChanged("The configuration changed after this page was loaded",
                                       "another admin or `jitbroker config set` saved it meanwhile; nothing was "
                                       "saved")
        _check_secret_entered_again(record, cleaned)
        _check_destinations(record, cleaned)
        changes = {}
        for name, value in cleaned.items():
            old = getattr(record, name)
            if old != value:
                field = FIELDS_BY_NAME[name]
                changes[name] = {"old": _shown(field, old), "new": _shown(field, value)}
            setattr(record, name, value)
        if cleaned.keys() & {"epm_approved_statuses", "epm_denied_statuses"}:
            _check_statuses_differ(record)
        record.updated_at = utcnow()
        record.save()
        if changes.keys() & EPM_CREDENTIAL_FIELDS:
            # No token outlives the credentials it was issued for (app/epm/tokens.py).
            tokens.forget_stored_tokens()
        if changes:
            audit.record(audit.CONFIGURATION_CHANGE, actor, "configuration", record.name, changes,
                         source_address=source_address)
    return record, pmc_host_warnings(record.pmc_host) if record.pmc_host else []


def masked_values(record):
    """Every field's value for display, secrets shown only as set or not."""
    return {field.name: _shown(field, getattr(record, field.name)) for field in FIELDS}
