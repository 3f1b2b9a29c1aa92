"""A parsed encoded query (app/servicenow_api/query.py) as one peewee WHERE expression, on SQLite and PostgreSQL.

How each kind of field compares, as an instance does:
- text: `=`, `!=`, IN and the orderings compare exactly; LIKE, NOT LIKE, STARTSWITH and ENDSWITH
  compare case-insensitively, as `lower(column) LIKE lower(pattern)` on both databases, with `%`, `_`
  and `\\` in the value taken literally. Empty and NULL are the same "empty".
- date-time: at whole seconds in UTC, as ServiceNow shows them: a stored 10:00:00.4 equals
  `10:00:00`; values are `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD` or `javascript:gs.dateGenerate(...)`.
- choice (state, approval, active): the operator runs over the few (value, label) choices and the
  column is compared with the values that match, so `state=In Progress` and `state=2` agree.
- reference: compared by the referenced record's sys_id or its name.
A query naming a field the table lacks answers no rows (ServiceNow with
`glide.invalid_query.returns_no_rows`), never every row; one ordering by a field whose order the database
cannot give is refused (Unordered), never ordered by something else."""
import re
from datetime import datetime, timedelta
from peewee import SQL, NodeList, fn

from app.db import UNICODE_LOWER, is_sqlite
from app.fields import later_by
from app.tickets import search

ONE_SECOND = timedelta(seconds=1)
DAY_BOUNDS = {"start": "00:00:00", "end": "23:59:59"}
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d")
# gs.dateGenerate('2026-01-01','10:00:00') as ServiceNow's filters write it, or ("2026-01-01 10:00:00") as pysnow does.
_DATE_GENERATE = re.compile(r"""^javascript:gs\.dateGenerate\(\s*(['"])([^'"]*)\1\s*(?:,\s*(['"])([^'"]*)\3\s*)?\)$""")
NEGATIVE = ("!=", "NOT LIKE", "NOT IN")

TRUE = SQL("1 = 1")
FALSE = SQL("1 = 0")


class NoRows(Exception):
    """The query names something the table does not have: the answer is empty."""


class Unordered(ValueError):
    """The query orders by a field its records cannot be ordered by; the message says what orders instead."""


def compile_query(query, fields, context):
    """The WHERE expression for `query` over `fields` (name -> Field), or raise NoRows (a field it compares or
    orders by that the table lacks)."""
    _check_order_fields(query, fields)
    groups = []
    for group in query.groups:
        clauses = [joined([_condition(fields, condition, context) for condition in clause], "OR")
                   for clause in group if clause]
        # A group without a condition adds nothing to the ORed groups (query.py leaves such parts out).
        if clauses:
            groups.append(joined(clauses, "AND"))
    return joined(groups, "OR") if groups else TRUE


def order_keys(query, fields):
    """The ORDER BY expressions of `query`'s ORDERBY and ORDERBYDESC fields, in its order; Unordered for a field
    that cannot order (checked before any other: a refusal says what to send instead, even when nothing would
    match), NoRows for a field the table lacks."""
    for name, _descending in query.order_by:
        if name in fields and fields[name].unordered:
            raise Unordered(fields[name].unordered)
    _check_order_fields(query, fields)
    return [fields[name].expression.desc() if descending else fields[name].expression.asc()
            for name, descending in query.order_by]


def _check_order_fields(query, fields):
    """NoRows when `query` orders by a field the table lacks: ServiceNow answers such a query with no records."""
    for name, _descending in query.order_by:
        if name not in fields:
            raise NoRows(name)


def joined(expressions, glue):
    """`a glue b glue ...` as a balanced tree of parenthesized pairs: a query of thousands of ^OR terms (pysnc
    sends them through the Batch API) would, as a chain, nest deeper than peewee's recursion and SQLite's
    expression depth limit (1,000) allow; balanced, it nests log2(n) deep."""
    if len(expressions) == 1:
        return expressions[0]
    middle = len(expressions) // 2
    return NodeList((joined(expressions[:middle], glue), SQL(glue), joined(expressions[middle:], glue)), parens=True)


def _condition(fields, condition, context):
    field = fields.get(condition.field)
    if field is None:
        raise NoRows(condition.field)
    if condition.operator == "ANYTHING":
        return TRUE
    return field.kind.compile(field, condition, context)


def split_list(value):
    return [item.strip() for item in value.split(",") if item.strip()]


def like_pattern(operator, value):
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"STARTSWITH": f"{escaped}%", "ENDSWITH": f"%{escaped}"}.get(operator, f"%{escaped}%")


def lower_like(expression, pattern):
    # A pattern beyond ASCII is compared on SQLite through a lower() that folds every alphabet, as like_pattern
    # folded the pattern: SQLite's own folds ASCII letters only, so "Ödegaard" would never meet "ödegaard".
    lower = fn.LOWER if pattern.isascii() or not is_sqlite() else getattr(fn, UNICODE_LOWER)
    return NodeList((lower(expression), SQL("LIKE"), pattern, SQL("ESCAPE '\\'")))


def is_empty(expression):
    return expression.is_null() | (expression == "")


class Text:
    """Strings; `normalize` turns a value into how the column stores it (ticket numbers are upper case).

    `searched`: the column is one the ticket search's trigram index covers (app/tickets/search.py), so
    LIKE, STARTSWITH and ENDSWITH first narrow to the tickets holding the text anywhere in those
    columns through the index, then check the column itself."""

    def __init__(self, normalize=None, searched=False):
        self.normalize = normalize or (lambda value: value)
        self.searched = searched

    def compile(self, field, condition, _context):
        column, operator, value = field.expression, condition.operator, condition.value
        if operator == "BETWEEN":
            low, high = (self.normalize(bound) for bound in value)
            return (column >= low) & (column <= high)
        if operator in ("ISEMPTY", "ISNOTEMPTY") or (operator in ("=", "!=") and value == ""):
            empty = is_empty(column)
            return empty if operator in ("ISEMPTY", "=") else ~empty
        if operator == "NOT LIKE":
            return ~lower_like(fn.COALESCE(column, ""), like_pattern("LIKE", value))
        if operator in ("LIKE", "STARTSWITH", "ENDSWITH"):
            matches = lower_like(column, like_pattern(operator, value))
            return search.text_condition(value) & matches if self.searched and value else matches
        if operator in ("IN", "NOT IN"):
            values = [self.normalize(item) for item in split_list(value)]
            if operator == "IN":
                return column.in_(values) if values else FALSE
            return (column.not_in(values) | column.is_null()) if values else TRUE
        value = self.normalize(value)
        return {"=": lambda: column == value, "!=": lambda: (column != value) | column.is_null(),
                "<": lambda: column < value, "<=": lambda: column <= value,
                ">": lambda: column > value, ">=": lambda: column >= value}[operator]()


def parse_time(text):
    """A ServiceNow date-time value as a naive UTC datetime at whole seconds, or None."""
    text = text.strip()
    generated = _DATE_GENERATE.match(text)
    if generated:
        _quote, day, _quote, time = generated.groups()
        if time is not None:
            text = f"{day} {DAY_BOUNDS.get(time, time)}"
        else:
            text = day
    for layout in TIME_FORMATS:
        try:
            return datetime.strptime(text, layout)
        except ValueError:
            continue
    return None


def _up_to_its_second(column, moment):
    """`column` at or before `moment`'s second: before the next one, or every time when there is no next
    (9999-12-31 23:59:59, a common "end of time")."""
    later = later_by(moment, ONE_SECOND)
    return column.is_null(False) if later is None else column < later


def _after_its_second(column, moment):
    """`column` after `moment`'s second: none after the last second there is."""
    later = later_by(moment, ONE_SECOND)
    return FALSE if later is None else column >= later


class DateTime:
    """Stored with microseconds, compared at the second: `t` means [t, t + 1s)."""

    def compile(self, field, condition, _context):
        column, operator, value = field.expression, condition.operator, condition.value
        if operator in ("ISEMPTY", "ISNOTEMPTY"):
            return column.is_null() if operator == "ISEMPTY" else column.is_null(False)
        if operator == "BETWEEN":
            low, high = parse_time(value[0]), parse_time(value[1])
            return FALSE if low is None or high is None else (column >= low) & _up_to_its_second(column, high)
        if operator in ("IN", "NOT IN"):
            times = [parse_time(item) for item in split_list(value)]
            ranges = [(column >= t) & _up_to_its_second(column, t) for t in times if t]
            within = joined(ranges, "OR") if ranges else FALSE
            return within if operator == "IN" else ~within | column.is_null()
        moment = parse_time(value)
        if moment is None or operator not in ("=", "!=", "<", "<=", ">", ">="):
            # Not a time, or a text operator on a time: it matches nothing rather than everything.
            return FALSE
        return {"=": lambda: (column >= moment) & _up_to_its_second(column, moment),
                "!=": lambda: (column < moment) | _after_its_second(column, moment) | column.is_null(),
                "<": lambda: column < moment, "<=": lambda: _up_to_its_second(column, moment),
                ">": lambda: _after_its_second(column, moment), ">=": lambda: column >= moment}[operator]()


def choice_matches(operator, value, choice_value, label):
    """Whether one choice (value, label) satisfies `operator value`, by value or by label, case-insensitively."""
    texts = (str(choice_value).casefold(), str(label).casefold())
    wanted = value.casefold() if isinstance(value, str) else value
    if operator in ("=", "!="):
        return (wanted in texts) == (operator == "=")
    if operator in ("IN", "NOT IN"):
        return any(item.casefold() in texts for item in split_list(value)) == (operator == "IN")
    if operator in ("LIKE", "NOT LIKE"):
        return any(wanted in text for text in texts) == (operator == "LIKE")
    if operator == "STARTSWITH":
        return any(text.startswith(wanted) for text in texts)
    if operator == "ENDSWITH":
        return any(text.endswith(wanted) for text in texts)
    if operator in ("ISEMPTY", "ISNOTEMPTY"):
        return (str(choice_value) == "") == (operator == "ISEMPTY")
    return _ordered(operator, value, choice_value)


def _ordered(operator, value, choice_value):
    """<, <=, >, >=, BETWEEN on a choice's value: numerically where both are numbers."""
    def number(text):
        try:
            return int(str(text).strip())
        except ValueError:
            return None

    have = number(choice_value)
    bounds = value if operator == "BETWEEN" else (value,)
    wanted = [number(bound) for bound in bounds]
    if have is None or None in wanted:
        return False
    if operator == "BETWEEN":
        return wanted[0] <= have <= wanted[1]
    return {"<": have < wanted[0], "<=": have <= wanted[0], ">": have > wanted[0], ">=": have >= wanted[0]}[operator]


class Choice:
    """A field with a few known values: `choices(context)` gives (value, label) pairs."""

    def __init__(self, choices):
        self.choices = choices

    def compile(self, field, condition, context):
        matching = [value for value, label in self.choices(context)
                    if choice_matches(condition.operator, condition.value, value, label)]
        return field.expression.in_(matching) if matching else FALSE


class Reference:
    """A reference held by its key (the user or group name): a value is the referenced sys_id or that name."""

    def __init__(self, resolve, searched=False):
        self.resolve = resolve  # sys_ids -> {sys_id: key} of the referenced records
        self.text = Text(searched=searched)

    def compile(self, field, condition, context):
        operator, value = condition.operator, condition.value
        if operator in ("=", "!=", "IN", "NOT IN") and value:
            items = split_list(value) if "IN" in operator else [value]
            keys = self.resolve(items)
            inside = field.expression.in_([keys.get(item, item) for item in items])
            return inside if operator in ("=", "IN") else (~inside | field.expression.is_null())
        return self.text.compile(field, condition, context)


# How a sys_id's own text meets a value, by operator (sys_ids are lower-case hex; ServiceNow compares ignoring case).
_SYS_ID_TESTS = {
    "LIKE": lambda sys_id, value: value in sys_id, "NOT LIKE": lambda sys_id, value: value in sys_id,
    "STARTSWITH": str.startswith, "ENDSWITH": str.endswith,
    "<": str.__lt__, "<=": str.__le__, ">": str.__gt__, ">=": str.__ge__,
    "BETWEEN": lambda sys_id, bounds: bounds[0] <= sys_id <= bounds[1],
}


class SysIdOf(Reference):
    """The sys_id of a record held by its name (sys_user's, or a ticket's `opened_by.sys_id`): = and IN find the
    names of the sys_ids given (Reference); a text operator or a comparison meets the sys_id's own text, through
    the names whose sys_id it accepts (`matching(accepts)`, which reads every name once per process)."""

    def __init__(self, resolve, matching, searched=False):
        super().__init__(resolve, searched)
        self.matching = matching

    def compile(self, field, condition, context):
        operator, value = condition.operator, condition.value
        test = _SYS_ID_TESTS.get(operator)
        if test is None or not value:
            return super().compile(field, condition, context)
        value = [bound.lower() for bound in value] if operator == "BETWEEN" else value.lower()
        names = self.matching(lambda sys_id: test(sys_id, value))
        inside = field.expression.in_(names) if names else FALSE
        return ~inside | field.expression.is_null() if operator == "NOT LIKE" else inside
