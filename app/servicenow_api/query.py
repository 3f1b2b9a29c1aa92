"""The part of ServiceNow's encoded query language the Table API subset understands: `=`, `!=`, `^` and ORDERBY.

Anything else is refused with a 400 saying so, rather than answering a different question."""
import re
from dataclasses import dataclass, field

_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)(!=|=)(.*)$", re.DOTALL)
_UNSUPPORTED = ("LIKE", "STARTSWITH", "ENDSWITH", "NOT IN", "IN", ">=", "<=", ">", "<", "ISEMPTY", "ISNOTEMPTY",
                "CONTAINS", "DOESNOTCONTAIN", "BETWEEN", "DATEPART", "SAMEAS", "NSAMEAS", "ANYTHING")


class QueryError(ValueError):
    """A query the subset cannot answer exactly; the message says which part."""


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str  # "=" or "!="
    value: str


@dataclass
class Query:
    conditions: list = field(default_factory=list)
    order_by: list = field(default_factory=list)  # (field, descending)


def parse_query(text, fields):
    """Parse `text` into a Query over `fields` (the names a condition or ordering may use)."""
    query = Query()
    if not text:
        return query
    for term in text.split("^"):
        term = term.strip()
        if not term or term == "EQ":
            continue
        if term.startswith("ORDERBYDESC"):
            query.order_by.append((_known(term[len("ORDERBYDESC"):], fields), True))
            continue
        if term.startswith("ORDERBY"):
            query.order_by.append((_known(term[len("ORDERBY"):], fields), False))
            continue
        if term.startswith(("OR", "NQ")):
            raise QueryError(f"{term!r}: only AND (^) is supported, not OR or NQ")
        match = _TERM.match(term)
        if match is None:
            operator = next((op for op in _UNSUPPORTED if op in term.upper()), None)
            raise QueryError(f"{term!r}: the operator {operator or 'used'} is not supported; use = or !=")
        name, operator, value = match.groups()
        query.conditions.append(Condition(_known(name, fields), operator, value))
    return query


def _known(name, fields):
    name = name.strip()
    if name not in fields:
        raise QueryError(f"{name!r} cannot be queried; fields are {', '.join(sorted(fields))}")
    return name
