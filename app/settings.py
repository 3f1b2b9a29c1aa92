"""Process settings: defaults, then a TOML file, then the environment, then explicit overrides.

What a process needs before it reaches its database; the integration settings live in the database."""
import functools
import os
import secrets
import socket
import tomllib
from dataclasses import dataclass, field as dataclass_field, fields, replace
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent

# TOML location of each setting: (section, key).
TOML_KEYS = {
    "database_url": ("database", "url"),
    "sqlite_busy_timeout_ms": ("database", "sqlite_busy_timeout_ms"),
    "sqlite_synchronous": ("database", "sqlite_synchronous"),
    "max_connections": ("database", "max_connections"),
    "secret_key": ("server", "secret_key"),
    "public_url": ("server", "public_url"),
    "max_body_bytes": ("intake", "max_body_bytes"),
    "auth_cache_seconds": ("intake", "auth_cache_seconds"),
    "log_level": ("logging", "level"),
    "session_idle_minutes": ("session", "idle_minutes"),
    "session_max_hours": ("session", "max_hours"),
    "trusted_proxies": ("server", "trusted_proxies"),
    "epm_timeout_seconds": ("epm", "timeout_seconds"),
    "retry_schedule": ("epm", "retry_schedule"),
    "no_webhook_hours": ("alerts", "no_webhook_hours"),
    "expire_pending_hours": ("tickets", "expire_pending_hours"),
    "policy_suggestion_approvals": ("tickets", "policy_suggestion_approvals"),
    "audit_key": ("audit", "key"),
    "audit_previous_keys": ("audit", "previous_keys"),
    "slack_bot_token": ("slack", "bot_token"),
    "slack_signing_secret": ("slack", "signing_secret"),
    "slack_channel": ("slack", "channel"),
    "slack_api_url": ("slack", "api_url"),
    "teams_webhook_url": ("teams", "webhook_url"),
    "require_mfa_for_admins": ("accounts", "require_mfa_for_admins"),
    "oidc_issuer": ("oidc", "issuer"),
    "oidc_client_id": ("oidc", "client_id"),
    "oidc_client_secret": ("oidc", "client_secret"),
    "oidc_scopes": ("oidc", "scopes"),
    "oidc_roles_claim": ("oidc", "roles_claim"),
    "oidc_admin_groups": ("oidc", "admin_groups"),
    "oidc_approver_groups": ("oidc", "approver_groups"),
    "oidc_username_claim": ("oidc", "username_claim"),
    "oidc_button_label": ("oidc", "button_label"),
    "oidc_step_up_max_age": ("oidc", "step_up_max_age"),
    "oidc_sign_in_max_age": ("oidc", "sign_in_max_age"),
}

# Environment variables that override the file (12-factor names).
ENV_KEYS = {
    "DATABASE_URL": "database_url",
    "SECRET_KEY": "secret_key",
    "JITBROKER_PUBLIC_URL": "public_url",
    "JITBROKER_LOG_LEVEL": "log_level",
    "PORT": "port",
    "JITBROKER_AUDIT_KEY": "audit_key",
    "JITBROKER_AUDIT_PREVIOUS_KEYS": "audit_previous_keys",
    "JITBROKER_SLACK_BOT_TOKEN": "slack_bot_token",
    "JITBROKER_SLACK_SIGNING_SECRET": "slack_signing_secret",
    "JITBROKER_SLACK_CHANNEL": "slack_channel",
    "JITBROKER_SLACK_API_URL": "slack_api_url",
    "JITBROKER_TEAMS_WEBHOOK_URL": "teams_webhook_url",
    "JITBROKER_OIDC_ISSUER": "oidc_issuer",
    "JITBROKER_OIDC_CLIENT_ID": "oidc_client_id",
    "JITBROKER_OIDC_CLIENT_SECRET": "oidc_client_secret",
    "JITBROKER_OIDC_SCOPES": "oidc_scopes",
    "JITBROKER_OIDC_ROLES_CLAIM": "oidc_roles_claim",
    # Comma-separated group names (or Entra ID object ids, or app role values).
    "JITBROKER_OIDC_ADMIN_GROUPS": "oidc_admin_groups",
    "JITBROKER_OIDC_APPROVER_GROUPS": "oidc_approver_groups",
    "JITBROKER_OIDC_USERNAME_CLAIM": "oidc_username_claim",
    "JITBROKER_OIDC_BUTTON_LABEL": "oidc_button_label",
    "JITBROKER_OIDC_STEP_UP_MAX_AGE": "oidc_step_up_max_age",
    "JITBROKER_OIDC_SIGN_IN_MAX_AGE": "oidc_sign_in_max_age",
}

# The whole numbers a setting may be: (lowest, highest, what it is). Outside them a setting would break the
# service rather than tune it (a body limit below any webhook's size, a pool of no connections, a session that
# ends before it starts), so the process refuses to start and names the setting.
INTEGER_RANGES = {
    "sqlite_busy_timeout_ms": (0, 3_600_000, "a number of milliseconds"),
    "max_connections": (1, 1000, "a number of connections"),
    "port": (1, 65535, "a TCP port"),
    "max_body_bytes": (1024, 1 << 30, "a number of bytes"),
    "auth_cache_seconds": (0, 86_400, "a number of seconds"),
    "session_idle_minutes": (0, 525_600, "a number of minutes"),
    "session_max_hours": (1, 8784, "a number of hours"),
    "trusted_proxies": (0, 100, "a number of proxies"),
    "epm_timeout_seconds": (1, 3600, "a number of seconds"),
    "no_webhook_hours": (0, 8784, "a number of hours"),
    "policy_suggestion_approvals": (0, 1_000_000, "a number of approvals"),
    "oidc_step_up_max_age": (0, 86_400, "a number of seconds"),
    "oidc_sign_in_max_age": (1, 86_400, "a number of seconds"),
}
# The database kinds DATABASE_URL may name (app/db.py).
DATABASE_SCHEMES = ("sqlite", "sqlite+pool", "postgres", "postgresql", "postgres+pool", "postgresql+pool")

# An audit key shorter than this is refused: HMAC-SHA256 wants 32 bytes of secret.
AUDIT_KEY_MIN_LENGTH = 32
# The longest [tickets] expire_pending_hours (10 years): far beyond any wait EPM keeps, and well inside the dates
# a database stores (the moment a request must be younger than is computed from it).
MAX_EXPIRE_PENDING_HOURS = 87600


class SettingsError(ValueError):
    """A settings file or variable that cannot be used; the message says which."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///instance/jitbroker.db"
    sqlite_busy_timeout_ms: int = 5000
    sqlite_synchronous: str = "FULL"
    max_connections: int = 8
    secret_key: str = dataclass_field(default="", repr=False)
    public_url: str = ""
    # The port gunicorn listens on (PORT, as the Procfile binds it): only for links while public_url is unset.
    port: int = 8000
    max_body_bytes: int = 1024 * 1024
    auth_cache_seconds: int = 300
    log_level: str = "INFO"
    # A browser session ends after this long unused, and this long after sign-in at most.
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    # Reverse proxies in front of the broker whose X-Forwarded-For/-Proto/-Host to trust
    # (0: none; the client address is the socket's peer).
    trusted_proxies: int = 0
    epm_timeout_seconds: int = 10
    # Seconds between delivery attempts to EPM; the last gap repeats until EPM answers.
    retry_schedule: str = "5,15,30,60,120,300"
    # Alert ops when no webhook has arrived from EPM for this many hours (0: never).
    no_webhook_hours: int = 24
    # A request still awaiting a decision this many hours after it arrived is marked expired (0: never).
    expire_pending_hours: int = 24
    # The ticket page suggests an EPM policy for an application approved this many times in 30 days (0: never).
    policy_suggestion_approvals: int = 5
    # Signs the audit chain (HMAC-SHA256, app/audit/keys.py). Empty: a key is generated once into
    # instance/audit_key. Previous keys (comma-separated) still verify the entries they signed.
    audit_key: str = dataclass_field(default="", repr=False)
    audit_previous_keys: str = dataclass_field(default="", repr=False)
    # The Slack app (app/chat): its bot token and signing secret (never logged or shown), the channel id new
    # tickets are posted to, and the Web API's base URL. Slack is on when the token, secret and channel are set.
    slack_bot_token: str = dataclass_field(default="", repr=False)
    slack_signing_secret: str = dataclass_field(default="", repr=False)
    slack_channel: str = ""
    slack_api_url: str = "https://slack.com/api/"
    # A Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is received"): a card per new
    # ticket and one when its decision is final. Its URL carries a signature, so it is a secret too.
    teams_webhook_url: str = dataclass_field(default="", repr=False)
    # Admins must sign in with a second factor (TOTP); one without is sent to enrol after the password.
    require_mfa_for_admins: bool = False
    # Sign-in through the organisation's OpenID Connect provider (app/auth/oidc.py); off while the issuer is empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = dataclass_field(default="", repr=False)
    oidc_scopes: str = "openid profile email"
    # The claim listing the person's groups (or app roles), and the groups that make an admin or an approver.
    oidc_roles_claim: str = "groups"
    oidc_admin_groups: str = ""
    oidc_approver_groups: str = ""
    # Names the account on pages and in the audit log only; the account is the provider's (iss, sub).
    oidc_username_claim: str = "preferred_username"
    oidc_button_label: str = ""
    # An Admin Access approval needs a provider sign-in at most this many seconds old.
    oidc_step_up_max_age: int = 300
    # How long a person may take at the provider's sign-in page before the broker refuses the answer.
    oidc_sign_in_max_age: int = 600

    @property
    def oidc_enabled(self):
        return bool(self.oidc_issuer)

    @property
    def link_base(self):
        """Where links that leave the broker point (EPM's ticketUrl, e-mail, chat): server.public_url, else
        http://<this host's fully qualified name>:<PORT>. Never a request's Host header: whoever sends the
        request chooses it."""
        return self.public_url.rstrip("/") or f"http://{_fully_qualified_name()}:{self.port}"

    @property
    def retry_delays(self):
        return [max(1, int(part)) for part in self.retry_schedule.replace(" ", "").split(",") if part]

    @property
    def audit_previous_key_list(self):
        return [key.strip() for key in self.audit_previous_keys.split(",") if key.strip()]

    @classmethod
    def load(cls, overrides=None, environ=None):
        """Build settings from defaults, the TOML file, the environment and `overrides`."""
        environ = os.environ if environ is None else environ
        values = {}
        config_path = environ.get("JITBROKER_CONFIG")
        if config_path or Path("config.toml").is_file():
            values.update(_read_toml(Path(config_path or "config.toml")))
        for variable, name in ENV_KEYS.items():
            if environ.get(variable):
                values[name] = environ[variable]
        values.update(overrides or {})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown settings: {', '.join(sorted(unknown))}")
        settings = cls()._coerced(values)
        try:
            if not settings.retry_delays:
                raise ValueError
        except ValueError:
            raise SettingsError(
                f"retry_schedule must list seconds, like 5,15,60, not {settings.retry_schedule!r}") from None
        for key in ([settings.audit_key] if settings.audit_key else []) + settings.audit_previous_key_list:
            if len(key) < AUDIT_KEY_MIN_LENGTH:
                raise SettingsError("an audit key (JITBROKER_AUDIT_KEY, JITBROKER_AUDIT_PREVIOUS_KEYS or [audit]) "
                                    f"must be at least {AUDIT_KEY_MIN_LENGTH} characters; one has {len(key)}")
        if settings.oidc_enabled and not settings.oidc_client_id:
            raise SettingsError("[oidc] client_id (JITBROKER_OIDC_CLIENT_ID) is needed when an issuer is set")
        if not 0 <= settings.expire_pending_hours <= MAX_EXPIRE_PENDING_HOURS:
            raise SettingsError(f"[tickets] expire_pending_hours must be 0 (never) to {MAX_EXPIRE_PENDING_HOURS} "
                                f"hours (10 years), not {settings.expire_pending_hours}")
        for name, (low, high, what) in INTEGER_RANGES.items():
            value = getattr(settings, name)
            if not low <= value <= high:
                raise SettingsError(f"{where(name)} must be {what} from {low} to {high}, not {value}")
        scheme = urlparse(settings.database_url).scheme
        if scheme not in DATABASE_SCHEMES:
            raise SettingsError(f"{where('database_url')} names a {scheme or 'scheme-less'} database: use "
                                "sqlite:///path/to/file.db or postgresql://user:password@host:5432/name")
        return settings

    def _coerced(self, values):
        typed = {}
        for field in fields(self):
            if field.name not in values:
                continue
            value = values[field.name]
            if field.type is bool:
                typed[field.name] = _boolean(field.name, value)
                continue
            try:
                typed[field.name] = int(value) if field.type is int else (
                    ",".join(map(str, value)) if isinstance(value, list) else str(value))
            except (TypeError, ValueError):
                raise SettingsError(f"setting {field.name} must be an integer, not {value!r} "
                                    f"({where(field.name)})") from None
        return replace(self, **typed)

    def with_secret_key(self, instance_path):
        """These settings with a secret key: the configured one, or one generated once into the instance folder
        (every worker must share the key that signs sessions)."""
        if self.secret_key:
            return self
        return replace(self, secret_key=generated_secret(Path(instance_path) / "secret_key"))


def where(name):
    """Where a person sets `name`: its TOML key, its environment variable, or both."""
    places = [f"[{TOML_KEYS[name][0]}] {TOML_KEYS[name][1]}"] if name in TOML_KEYS else []
    places += [variable for variable, setting in ENV_KEYS.items() if setting == name]
    return " or ".join(places) or name


def generated_secret(key_file):
    """The secret kept in `key_file`, generated (64 hex digits, mode 0600) by the first process that asks.

    Workers starting together all read the one secret the first of them wrote: it is written whole
    to a file of its own and then linked into place, which fails for every writer but one."""
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        draft = key_file.with_name(f".{key_file.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
            os.link(draft, key_file)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return key_file.read_text().strip()


def _boolean(name, value):
    """A TOML boolean (or true/false, yes/no, 1/0 given as text, as an override may be)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise SettingsError(f"setting {name} must be true or false, not {value!r}")


@functools.cache
def _fully_qualified_name():
    # socket.getfqdn() may ask DNS: once per process.
    return socket.getfqdn()


def _read_toml(path):
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"settings file {path} is not valid TOML: {error}") from None
    values = {}
    for name, (section, key) in TOML_KEYS.items():
        if key in document.get(section, {}):
            values[name] = document[section][key]
    known = {section for section, _ in TOML_KEYS.values()}
    for section, table in document.items():
        known_keys = {key for s, key in TOML_KEYS.values() if s == section}
        unknown = sorted(set(table) - known_keys) if section in known and isinstance(table, dict) else [section]
        if unknown:
            raise SettingsError(f"settings file {path}: unknown key in [{section}]: {', '.join(unknown)} "
                                "(config.example.toml lists every key)")
    return values
