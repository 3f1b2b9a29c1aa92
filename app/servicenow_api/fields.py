"""What a Table API field is (a kind that compares it, an SQL expression), and how a record's values are written.

A reference field's value is the referenced record's sys_id; people and assignment groups are
names on a ticket, so their sys_ids are derived from the name (`reference_sys_id`): the same
person has the same sys_id in every answer, with or without a broker account."""
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache

# Fixed, so a person's or group's sys_id never changes between releases or instances.
REFERENCE_NAMESPACE = uuid.UUID("6d1f3c0e-5b8a-4f51-9a57-1c2b6a0e4f77")
USER_TABLE = "sys_user"
GROUP_TABLE = "sys_user_group"


@dataclass(frozen=True)
class Field:
    """A queryable field: `kind` compiles conditions on `expression` (app/servicenow_api/compiler.py), which also
    orders the records unless `unordered` says why it cannot and what orders instead."""

    name: str
    kind: object
    expression: object
    unordered: str = ""


@dataclass(frozen=True)
class Reference:
    """A reference value: the referenced record's sys_id, its display name and its table."""

    sys_id: str
    display: str
    table: str


@dataclass(frozen=True)
class Context:
    """What a query or an answer depends on beyond the request: the ticket type, the active states, the base URL."""

    ticket_type: object = None
    configuration: object = None
    base_url: str = ""


@lru_cache(maxsize=65536)
def reference_sys_id(table, name):
    """The sys_id of the user or group called `name`: 32 hex characters, the same every time.

    Remembered: a page names the same few people and groups on most of its records."""
    return uuid.uuid5(REFERENCE_NAMESPACE, f"{table}:{name}").hex


def reference(table, name):
    return Reference(reference_sys_id(table, name), name, table) if name else None


def _link(context, item):
    return f"{context.base_url}/api/now/table/{item.table}/{item.sys_id}"


def written(value, mode, with_links, context):
    """One field as ServiceNow writes it for `sysparm_display_value` = mode ("false", "true", "all").

    Plain fields are (value, display) strings; a reference is an object with `link` unless
    links are excluded, and an empty reference is an empty string (or empty pair with "all")."""
    if isinstance(value, Reference):
        if mode == "all":
            shown = {"display_value": value.display, "value": value.sys_id}
        else:
            shown = {"display_value": value.display} if mode == "true" else {"value": value.sys_id}
        if not with_links:
            return shown if mode == "all" else next(iter(shown.values()))
        return {**shown, "link": _link(context, value)}
    actual, display = value
    if mode == "all":
        return {"value": actual, "display_value": display}
    return display if mode == "true" else actual


def written_record(values, names, answer, context):
    """A record's fields in `names` as the answer holds them: {field: written value}."""
    mode, links = answer
    return {name: written(values[name], mode, links, context) for name in names if name in values}


def dumps(value):
    """`value` as JSON text as the answers write it (Flask's jsonify out of debug mode): keys sorted,
    ASCII only, no spaces."""
    return json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
