"""Masking secrets in anything that may be logged or shown: request and response bodies.

The outbound-call log and our own log lines see what the broker sends to EPM and what
EPM answers, which includes the client secret and access tokens. `redact` replaces
their values with a fixed mask wherever they appear: in dicts, in JSON text, in
form-encoded text, and (as a last resort) in text that is neither.
"""
import json
import re
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

MASK = "********"

_EXACT_NAMES = {"client_secret", "access_token", "refresh_token", "id_token", "password", "authorization"}
_NAME_PARTS = ("secret", "token", "password")
_NOT_SECRET = {"token_type"}  # OAuth's "Bearer": useful in a log, and no credential

# For text that is neither JSON nor a form: a secret-named key followed by its value,
# as it appears in truncated JSON (`"access_token": "abc`) or in `key=value` lists.
_KEY_VALUE = re.compile(
    r"""(?P<key>["']?[\w-]*(?:secret|token|password|authorization)[\w-]*["']?\s*[:=]\s*["']?)"""
    r"""(?P<value>[^"'&\s,}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)


def is_secret_name(name):
    """True for a key whose value must never be logged (client_secret, *token*, Authorization...)."""
    lowered = str(name).lower()
    if lowered in _NOT_SECRET:
        return False
    return lowered in _EXACT_NAMES or any(part in lowered for part in _NAME_PARTS)


def redact(value):
    """A copy of `value` with every secret's value replaced by ********.

    Dicts and lists are copied with secret-named keys masked at any depth; text is
    treated as JSON if it parses, else as a form-encoded body, else scanned for
    `key: value` / `key=value` pairs and Bearer/Basic credentials. Bytes are decoded
    as UTF-8. Anything else is returned unchanged.
    """
    if isinstance(value, Mapping):
        return {key: (MASK if is_secret_name(key) and item not in (None, "") else redact(item))
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        return _redact_text(value)
    return value


def _redact_text(text):
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            pass
        else:
            return json.dumps(redact(parsed), ensure_ascii=False)
    if "=" in stripped and not any(ch.isspace() for ch in stripped):
        try:
            pairs = parse_qsl(stripped, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            pass
        else:
            # Keep the mask readable: urlencode would turn it into %2A%2A...
            return urlencode([(key, MASK if is_secret_name(key) and item else item) for key, item in pairs],
                             safe="*")
    # Credentials after Bearer/Basic first, so "Authorization: Bearer x" loses both parts.
    masked = _BEARER.sub(lambda m: m.group("key") + MASK, text)
    return _KEY_VALUE.sub(lambda m: m.group("key") + MASK, masked)


def truncate(text, limit=1000):
    """`text` cut to `limit` characters, marked when cut; None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"
