"""Named, labelled fields whose raw text a form, the JSON API or the command line sets, and
what marshmallow lacks for the JSON API's documents.

The EPM configuration, policy rules and ITSM connections each declare a tuple of Fields;
`clean_values` checks a raw mapping against one such tuple and names every bad field.
`Document` and the two UTC time fields are the base of the API's answer schemas, which
app/openapi/spec.py turns into the OpenAPI description.
"""
from dataclasses import dataclass

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from app import contract
from app.errors import BadRequest

SYS_ID = {"pattern": "^[0-9a-f]{32}$"}
MAX_ROW_ID = 2 ** 63 - 1  # the largest id a row can have: PostgreSQL's bigint, SQLite's INTEGER
MAX_OFFSET = 10 ** 9  # the largest list offset any API takes; beyond 2**63 the databases cannot take the number
NO_NUL = {"not": {"type": "string", "pattern": r"\x00"}}  # JSON Schema: text without a NUL

TRUE = {"true", "yes", "on", "1"}
FALSE = {"false", "no", "off", "0", ""}


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    clean: object  # raw value -> cleaned value; raises ValueError with a message for the user
    help: str = ""
    secret: bool = False


def clean_boolean(value):
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError("use true or false")


def clean_choice(choices):
    """A cleaner accepting exactly one of `choices` (names as the user types them)."""
    def clean(value):
        text = str(value).strip()
        if text not in choices:
            raise ValueError(f"choose one of {', '.join(choices)}")
        return text
    return clean


def clean_text(limit, required=False):
    def clean(value):
        text = str(value).strip()
        if required and not text:
            raise ValueError("required")
        if len(text) > limit:
            raise ValueError(f"at most {limit} characters")
        return text
    return clean


def clean_values(fields_by_name, raw, title, kept_types=(str, bool), what="field"):
    """Check raw values by field name; returns cleaned values or raises BadRequest(`title`) with `fields`.

    Values of `kept_types` reach the field's cleaner as they are; anything else as its text.
    An unknown name is refused as an unknown `what`.
    """
    cleaned, errors = {}, {}
    for name, value in raw.items():
        field = fields_by_name.get(name)
        if field is None:
            errors[name] = f"unknown {what}; {what}s are {', '.join(fields_by_name)}"
            continue
        try:
            cleaned[name] = field.clean(value if isinstance(value, kept_types) else str(value))
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        detail = "; ".join(f"{name}: {message}" for name, message in errors.items())
        raise BadRequest(title, detail, extra={"fields": errors})
    return cleaned


def load_query(schema, args, title="Invalid query", blank_is_missing=False):
    """A query string loaded by `schema`; BadRequest(`title`) naming each wrong field. With `blank_is_missing`
    an empty parameter counts as not given (the operations pages' forms send every field)."""
    values = args.to_dict() if hasattr(args, "to_dict") else dict(args)
    try:
        return schema.load({key: value for key, value in values.items()
                            if not blank_is_missing or value not in (None, "")})
    except ValidationError as error:
        detail = "; ".join(f"{name}: {' '.join(map(str, messages))}" for name, messages in error.messages.items())
        raise BadRequest(title, detail, extra={"fields": error.messages}) from None


class Document(Schema):
    """A JSON document the API answers with. Every field is always there (OpenAPI `required`)
    unless its metadata says `optional` (a part only some answers carry)."""

    def on_bind_field(self, field_name, field_obj):
        field_obj.required = not field_obj.metadata.get("optional")


class RequestBody(Schema):
    """A JSON body whose keys beyond the declared ones are ignored (OpenAPI: additional properties allowed)."""

    class Meta:
        unknown = EXCLUDE


class NaiveUtc(fields.DateTime):
    """UTC in ISO 8601 without an offset, microseconds when there are any: the ticket documents' times."""

    PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?$"

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": self.PATTERN, "description": "UTC, ISO 8601 without an offset",
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)


class Utc(fields.DateTime):
    """Naive UTC in ISO 8601 with the Z that says so: the operations documents' times."""

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{value.isoformat()}Z"


def later_by(moment, step):
    """`moment` + `step`, or None past the calendar's last moment (datetime.max, 9999-12-31 23:59:59.999999):
    a range ending there has no later bound."""
    try:
        return moment + step
    except OverflowError:
        return None


_WORD_UNITS = (("hour", 3600), ("minute", 60), ("second", 1))


DURATION_SHOWN = 40


def clipped(text, limit):
    """`text` of at most `limit` characters: cut short with "…" when longer."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _shown(words):
    return clipped(words, DURATION_SHOWN)


def duration_words(value):
    """A duration EPM or the broker states in seconds, in words: `Once`, `30 minutes`, `2 hours`, `1 hour 30 minutes`.

    Text that is neither "Once" nor a whole number of seconds is shown as EPM sent it, escaped by the page; words or
    text over DURATION_SHOWN characters (a number of thousands of digits) are cut short with "…"."""
    if value is None or str(value).strip() == "":
        return ""
    text = str(value).strip()
    if text.casefold() == contract.EPM_DURATION_ONCE.casefold():
        return contract.EPM_DURATION_ONCE
    try:
        number = float(text)
    except ValueError:
        return _shown(text)
    if not number.is_integer() or number < 0:
        return _shown(text)
    seconds = int(number)
    if seconds == 0:
        return "0 seconds"
    parts = []
    for unit, size in _WORD_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}" + ("" if count == 1 else "s"))
    return _shown(" ".join(parts))
