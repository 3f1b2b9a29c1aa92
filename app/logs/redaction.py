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
_NAME_PARTS = ("secret", "token", "password", "cookie")
_NOT_SECRET = {"token_type"}  # OAuth's "Bearer": useful in a log, and no credential

# Text is scanned in time proportional to its length, whatever it holds (a body may carry a
# run of hundreds of thousands of letters): no pattern here may start at each character of a
# run and look through the rest of it from there, which takes time growing with the square of
# the run. So _KEY_VALUE starts a name only where a run of word characters starts (the
# lookbehind), finds the secret word in the run once (the lookahead) and never gives back what
# it took (the possessive `++`).

# For text that is neither JSON nor a form: a secret-named key followed by its value,
# as it appears in truncated JSON (`"access_token": "abc`) or in `key=value` lists.
# A quoted value runs to its closing quote (or the end of the line, where JSON was cut),
# spaces and all; an unquoted one to the first space, quote, `&`, `,` or `}`.
_KEY_VALUE = re.compile(
    r"""(?P<key>["']?(?<![\w-])(?=[\w-]*?(?:secret|token|password|authorization|cookie))[\w-]++"""
    r"""["']?\s*[:=]\s*(?P<quote>["'])?)"""
    r"""(?P<value>(?(quote)(?:(?!(?P=quote))[^\\\r\n]|\\.)++|[^"'&\s,}]+))""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\b(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
# A Cookie or Set-Cookie header's whole value: every cookie in it, to the end of the line.
_COOKIE_HEADER = re.compile(r"(?P<key>\b(?:Set-)?Cookie[ \t]*:[ \t]*)(?P<value>\S[^\r\n]*)", re.IGNORECASE)
# The password in a URL's `user:password@` (the user name stays, as the client ID does). A `"`
# ends it, so a URL inside JSON text is masked without touching the JSON around it.
_URL_PASSWORD = re.compile(r"""(?P<key>://[^\s/?#@:"]*:)(?P<value>[^\s/?#@"]++)(?=@)""")


def is_secret_name(name):
    """True for a key whose value must never be logged (client_secret, *token*, Authorization...)."""
    lowered = str(name).lower()
    if lowered in _NOT_SECRET:
        return False
    return lowered in _EXACT_NAMES or any(part in lowered for part in _NAME_PARTS)


def redact(value):
    """A copy of `value` with every secret's value replaced by ********.

    Dicts and lists are copied with secret-named keys masked at any depth; text is
    treated as JSON if it parses (and is not nested too deep to walk), else as a
    form-encoded body, else scanned for `key: value` / `key=value` pairs, Bearer/Basic
    credentials and Cookie/Set-Cookie headers. A URL's password (`user:password@`) is masked in any text. Bytes are
    decoded as UTF-8. Anything else is returned unchanged.
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
    text = _URL_PASSWORD.sub(_masked, text)
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(redact(json.loads(stripped)), ensure_ascii=False)
        except ValueError:
            pass
        except RecursionError:
            pass  # nested deeper than Python's stack lets it be walked: masked as text, below
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
    masked = _BEARER.sub(_masked, text)
    masked = _COOKIE_HEADER.sub(_masked, masked)
    return _KEY_VALUE.sub(_masked, masked)


def _masked(match):
    """A match of one of the patterns above with its value replaced by the mask."""
    return match.group("key") + MASK


def truncate(text, limit=1000):
    """`text` cut to `limit` characters, marked when cut; None stays None."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"
