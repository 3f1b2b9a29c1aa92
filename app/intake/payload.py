"""Reading EPM's JSON as it really arrives: duplicate keys, string-typed values,
unfilled `%%placeholders%%` and .NET timestamps (contract/epm.md §1).
"""
import json
import re
from datetime import datetime, timezone

from app.errors import BadRequest

_PLACEHOLDER = re.compile(r"^%%[^%]*%%$")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)"
    r"(?:[.,](?P<fraction>\d+))?\s*(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


def _is_blank(value):
    return value is None or (isinstance(value, str) and (not value.strip() or _PLACEHOLDER.match(value.strip())))


def _keep_first_filled(pairs):
    """Build a JSON object; for a repeated key keep the first non-blank value.

    EPM's published template repeats `workstyle`; an administrator's edited
    template may repeat others, sometimes with one copy left unfilled.
    """
    result = dict(pairs)
    if len(result) == len(pairs):
        return result  # no key repeats: the common case, built without a Python loop
    result = {}
    for key, value in pairs:
        if key not in result or (_is_blank(result[key]) and not _is_blank(value)):
            result[key] = value
    return result


def parse_json_object(raw_body):
    """The delivery's top-level JSON object, its text made storable (`_storable`); BadRequest
    with the parser's reason otherwise."""
    try:
        text = raw_body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise BadRequest("Malformed JSON", f"the body is not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        document = json.loads(text, object_pairs_hook=_keep_first_filled)
    except (ValueError, RecursionError) as error:
        # ValueError beyond JSONDecodeError: a number longer than Python converts (4300 digits).
        raise BadRequest("Malformed JSON", str(error)) from None
    if not isinstance(document, dict):
        raise BadRequest("Malformed JSON", "the body must be a JSON object")
    return _storable(document)


def _storable(value):
    """`value` with NUL characters and unpaired surrogates (legal JSON escapes) replaced by U+FFFD.

    Neither database can store them in a text column; the raw body keeps the original.
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


def text_value(value):
    """An EPM scalar as text, or None for empty and unreplaced placeholder values.

    Returns the input unchanged when it is not a scalar, so the caller can reject it.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return None if _is_blank(value) else value.strip()
    return value


def parse_timestamp(value):
    """An EPM timestamp as naive UTC, or None when absent or unreadable.

    Accepts 7 fractional digits (.NET), no zone (taken as UTC) and offsets. An
    unreadable timestamp is not a reason to lose a delivery: the raw body keeps it.
    """
    text = text_value(value)
    if not isinstance(text, str):
        return None
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    clock = match["time"] if match["time"].count(":") == 2 else match["time"] + ":00"
    fraction = (match["fraction"] or "0")[:6].ljust(6, "0")
    zone = (match["zone"] or "Z").upper()
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:] or '00'}"
    try:
        moment = datetime.fromisoformat(f"{match['date']}T{clock}.{fraction}{zone}")
    except ValueError:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None)
