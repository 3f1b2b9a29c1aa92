"""ServiceNow's encoded query language (`sysparm_query`), parsed by a lark grammar into a Query.

Precedence as on an instance: `^NQ` separates queries whose results are ORed together, `^`
ANDs the clauses of one query, and `^OR` binds tighter than `^` (`a^b^ORc` is `a AND (b OR c)`).
ORDERBY/ORDERBYDESC may appear anywhere and order the whole answer. An empty part adds nothing: `a^` is
`a`, and so are `a^NQ` and `^NQa` (a `^NQ` part without a term, or with only an ORDERBY or EQ, is left out
rather than ORing "every record" into the answer); a query whose parts are all empty selects every record,
as no query does. A field name runs up to the
first operator (`short_descriptionLIKEvpn`): ServiceNow's column names are lower case, so an
operator word is where a name ends. A name with capitals (`Number=...`) is still a name, of no
field: what a name means is not decided here, and app/servicenow_api/compiler.py answers a query
naming an unknown field with no rows (ServiceNow with `glide.invalid_query.returns_no_rows`). Only
text that is no encoded query (a term without a field or an operator) is a QueryError."""
from dataclasses import dataclass, field

from lark import Lark, Transformer
from lark.exceptions import LarkError, VisitError

GRAMMAR = r"""
    query: group (NQ group)*
    group: clause? (AND clause?)*
    ?clause: disjunction | ordering | END_OF_QUERY
    disjunction: term (OR term)*
    term: FIELD operator VALUE?
        | FIELD BETWEEN BOUND "@" BOUND
    operator: EQUALS | NOT_EQUALS | LIKE | NOT_LIKE | STARTSWITH | ENDSWITH | IN | NOT_IN
            | LESS | LESS_OR_EQUAL | GREATER | GREATER_OR_EQUAL | ISEMPTY | ISNOTEMPTY | ANYTHING
    ordering: (ORDERBYDESC | ORDERBY) FIELD

    FIELD: /(?!ORDERBY|EQ(?:\^|$))[A-Za-z_](?:(?!LIKE|NOT |STARTSWITH|ENDSWITH|IN|ISEMPTY|ISNOTEMPTY|ANYTHING|BETWEEN)[A-Za-z0-9_.])*/
    VALUE: /[^^]+/
    BOUND: /[^^@]+/
    NQ: "^NQ"
    OR: /\^OR(?!DERBY)/
    AND: "^"
    END_OF_QUERY: "EQ"
    ORDERBY: "ORDERBY"
    ORDERBYDESC: "ORDERBYDESC"
    BETWEEN: "BETWEEN"
    EQUALS: "="
    NOT_EQUALS: "!="
    LIKE: "LIKE"
    NOT_LIKE: "NOT LIKE"
    STARTSWITH: "STARTSWITH"
    ENDSWITH: "ENDSWITH"
    IN: "IN"
    NOT_IN: "NOT IN"
    LESS: "<"
    LESS_OR_EQUAL: "<="
    GREATER: ">"
    GREATER_OR_EQUAL: ">="
    ISEMPTY: "ISEMPTY"
    ISNOTEMPTY: "ISNOTEMPTY"
    ANYTHING: "ANYTHING"
"""  # noqa: E501 - the FIELD terminal is one regular expression
# The contextual lexer only tries the terminals the parser can take next, so a value may hold
# anything but `^` (an operator word inside a value stays part of the value).
_PARSER = Lark(GRAMMAR, start="query", parser="lalr", lexer="contextual")
OPERATORS = ("=", "!=", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH", "IN", "NOT IN", "<", "<=", ">", ">=",
             "ISEMPTY", "ISNOTEMPTY", "ANYTHING", "BETWEEN")
UNARY_OPERATORS = ("ISEMPTY", "ISNOTEMPTY", "ANYTHING")


class QueryError(ValueError):
    """A query that is not ServiceNow's encoded query syntax; the message says where it stops making sense."""


@dataclass(frozen=True)
class Condition:
    """`field operator value`; BETWEEN's value is the pair of bounds, IN's the comma-separated list."""

    field: str
    operator: str
    value: object = ""


@dataclass
class Query:
    """`groups` are ORed (one per `^NQ` part with a term); a group is a list of clauses ANDed; a clause a list of
    Conditions ORed. No groups: every record."""

    groups: list = field(default_factory=list)
    order_by: list = field(default_factory=list)  # (field, descending)

    @property
    def conditions(self):
        return [condition for group in self.groups for clause in group for condition in clause]


class _ToQuery(Transformer):
    def __init__(self):
        super().__init__()
        self.order_by = []

    def query(self, items):
        # A part with no term (`a^NQ`, `^NQa`, `a^NQORDERBYb`) is no group: as a group it would select everything.
        return Query([item for item in items if isinstance(item, list) and item], self.order_by)

    def group(self, items):
        return [item for item in items if isinstance(item, list)]

    def disjunction(self, items):
        return [item for item in items if isinstance(item, Condition)]

    def term(self, items):
        name = str(items[0])
        if str(items[1]) == "BETWEEN":
            return Condition(name, "BETWEEN", (str(items[2]), str(items[3])))
        operator = items[1]
        value = str(items[2]) if len(items) > 2 else ""
        if operator in UNARY_OPERATORS and value:
            raise QueryError(f"{name}{operator}{value!r}: {operator} takes no value")
        return Condition(name, operator, value)

    def operator(self, items):
        return str(items[0])

    def ordering(self, items):
        self.order_by.append((str(items[1]), str(items[0]) == "ORDERBYDESC"))
        return None

    def END_OF_QUERY(self, _token):
        return None


def parse_query(text):
    """Parse `text` into a Query; QueryError with the position where the syntax fails."""
    if not text or not text.strip():
        return Query()
    try:
        tree = _PARSER.parse(text)
    except LarkError as error:
        where = getattr(error, "column", None)
        detail = f" at character {where}" if where else ""
        raise QueryError(f"not an encoded query{detail}: each term is a field name, an operator "
                         f"({', '.join(OPERATORS)}) and a value, joined by ^, ^OR or ^NQ") from None
    try:
        return _ToQuery().transform(tree)
    except VisitError as error:
        raise error.orig_exc from None
