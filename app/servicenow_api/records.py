"""The broker's tickets as Table API records of incident, change_request, sc_task and sc_req_item.

Every field a record shows can be queried and ordered by: computed ones (`approval`, `active`,
the access window) as SQL expressions, so a query, its count and its page are one database
answer however the conditions are combined."""
import re
from collections import namedtuple
from datetime import datetime
from functools import lru_cache

from peewee import Case, Value, fn

from app import contract
from app.db import database
from app.itsm.base import APPROVED, NOT_REQUESTED, REJECTED, REQUESTED
from app.models import AdminTicket, ApplicationAccessTicket, Decision, Task
from app.servicenow_api import compiler
from app.servicenow_api.fields import GROUP_TABLE, USER_TABLE, Field, reference, reference_sys_id
from app.servicenow_api.people import GROUP_WALKS, USER_WALKS, group_sys_ids, user_sys_ids

APPROVAL_CHOICES = ((APPROVED, "Approved"), (REJECTED, "Rejected"), (REQUESTED, "Requested"),
                    (NOT_REQUESTED, "Not Yet Requested"))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# The answer's fields when `sysparm_fields` names none, in ServiceNow's order.
FIELDS = ("sys_id", "number", "sys_class_name", "state", "approval", "active", "opened_by", "short_description",
          "start_date", "end_date", "opened_at", "closed_at", "sys_created_on", "sys_updated_on", "assignment_group",
          "category", "correlation_id")
# Reference field -> (referenced table, the Task column holding the name, its dot-walkable fields).
REFERENCES = {"opened_by": (USER_TABLE, Task.requester, USER_WALKS),
              "assignment_group": (GROUP_TABLE, Task.assignment_group, GROUP_WALKS)}


def _jit_column(name):
    """A column of the ticket's JIT record (application or admin access), as a correlated subquery."""
    return fn.COALESCE(*(model.select(getattr(model, name)).where(model.task == Task.id)
                         for model in (ApplicationAccessTicket, AdminTicket)))


def _approval_expression():
    """approval_of() in SQL: EPM's final decision, else the latest decision not refused for good, else requested."""
    final = fn.COALESCE(*(model.select(model.final_decision).where((model.task == Task.id) & model.decision_final)
                          for model in (ApplicationAccessTicket, AdminTicket)))
    latest = fn.COALESCE(Decision.select(Decision.decision)
                         .where((Decision.task == Task.id) & (Decision.status != contract.DELIVERY_FAILED))
                         .order_by(Decision.decided_at.desc(), Decision.id.desc()).limit(1), "")
    # Each subquery runs per record, so each is written twice, not more: a NULL compares as neither true
    # nor false, so `final != ''` alone is "EPM finalized a decision".
    return Case(None, [
        (fn.LOWER(fn.TRIM(final)) == "approved", APPROVED), (final != "", REJECTED),
        (latest == contract.DECISION_APPROVED, APPROVED), (latest != "", REJECTED)], REQUESTED)


def _active_expression(context):
    labels = {label.casefold() for label in context.configuration.active_state_labels}
    values = [value for value, label in context.ticket_type.states if label.casefold() in labels]
    return Case(None, [(Task.state.in_(values), "true")], "false") if values else Value("false")


def task_fields(context):
    """Every queryable field of a ticket table, dot-walked reference fields included."""
    # LIKE on the columns the ticket search document holds goes through its index (compiler.Text).
    text, searched, when = compiler.Text(), compiler.Text(searched=True), compiler.DateTime()
    fields = [
        Field("sys_id", text, Task.sys_id), Field("number", compiler.Text(str.upper, searched=True), Task.number),
        Field("sys_class_name", text, Task.sys_class_name),
        Field("state", compiler.Choice(lambda c: c.ticket_type.states), Task.state),
        Field("approval", compiler.Choice(lambda _c: APPROVAL_CHOICES), _approval_expression()),
        Field("active", compiler.Choice(lambda _c: (("true", "true"), ("false", "false"))),
              _active_expression(context)),
        Field("opened_by", compiler.Reference(user_sys_ids, searched=True), Task.requester),
        Field("assignment_group", compiler.Reference(group_sys_ids), Task.assignment_group),
        Field("short_description", searched, Task.short_description), Field("category", text, Task.category),
        Field("correlation_id", text, Task.request_id),
        Field("start_date", when, _jit_column("final_start_time")),
        Field("end_date", when, _jit_column("final_end_time")),
        Field("opened_at", when, Task.opened_at), Field("closed_at", when, Task.closed_at),
        Field("sys_created_on", when, Task.opened_at), Field("sys_updated_on", when, Task.updated_at),
    ]
    for name, (_table, column, walks) in REFERENCES.items():
        fields += [Field(f"{name}.{walk}", kind, make(column), _UNORDERED.get(walk, "").format(name))
                   for walk, (kind, make) in walks.items()]
    return {field.name: field for field in fields}


# A reference's sys_id is a hash of the name the ticket holds (fields.reference_sys_id): no column or index holds
# it, so the database could order tickets by it only by reading and sorting every matching ticket for each page.
# Clients order tickets by a person's or group's name, or by the ticket's own sys_id (pysnc's default), not by
# that hash: the query is refused rather than ordered by the name, which would be another order than asked.
_UNORDERED = {"sys_id": "tickets cannot be ordered by {0}.sys_id: use ORDERBY{0} or ORDERBY{0}.name (by the name), "
                        "or ORDERBYsys_id (by the ticket's own sys_id) for a stable order to page through"}


# Fields computed in SQL (subqueries on the JIT record, the decisions, the accounts): selected with the page
# under these names, so a page of thousands of records is one query, not one or more per record.
COMPUTED = {"approval": "snow_approval", "active": "snow_active", "start_date": "snow_start_date",
            "end_date": "snow_end_date", "opened_by.email": "snow_opened_by_email"}


# The Task columns a record's fields come from (the search document's columns are never shown).
RECORD_COLUMNS = (Task.id, Task.sys_id, Task.number, Task.sys_class_name, Task.state, Task.short_description,
                  Task.category, Task.request_id, Task.requester, Task.assignment_group, Task.opened_at,
                  Task.closed_at, Task.updated_at)


@lru_cache(maxsize=None)
def row_type(computed):
    """The row a page is read into: the Task columns, then the computed fields in `computed` (their aliases).

    A plain tuple with names, not a model instance: a page of thousands of records is read as the
    database answers it, and the values are written from it (ticket_json.py)."""
    return namedtuple("TaskRow", [column.name for column in RECORD_COLUMNS] + [COMPUTED[name] for name in computed])


def computed_fields(names):
    """The computed fields among `names`, in COMPUTED's order: what `row_type` is made for."""
    wanted = set(names)
    return tuple(name for name in COMPUTED if name in wanted)


def _page_select(fields, computed):
    """Task rows with the fields in `computed` as extra columns."""
    extra = [fields[name].expression.alias(COMPUTED[name]) for name in computed]
    return Task.select(*RECORD_COLUMNS, *extra)


def _read(select, computed):
    """The rows of `select` as `row_type(computed)`, values as the database driver answers them."""
    sql, params = select.sql()
    make = row_type(computed)._make
    return [make(row) for row in database.execute_sql(sql, params).fetchall()]


def page_queries(ticket_type, query, limit, offset, context, names):
    """(the SELECT of one page of tasks of `ticket_type` matching `query` with the fields in `names`,
    the SELECT counting them all)."""
    fields = task_fields(context)
    orderings = compiler.order_keys(query, fields)
    condition = (Task.sys_class_name == ticket_type.table) & compiler.compile_query(query, fields, context)
    page = _page_select(fields, computed_fields(names)).where(condition)
    page = page.order_by(*orderings, Task.id) if orderings else page.order_by(Task.opened_at, Task.id)
    return page.limit(limit).offset(offset), Task.select(Task.id).where(condition)


def find_records(ticket_type, query, limit, offset, context, names):
    """(tasks of `ticket_type` matching `query`, one page with the fields in `names`; how many match in all)."""
    page, matching = page_queries(ticket_type, query, limit, offset, context, names)
    rows = _read(page, computed_fields(names))
    if len(rows) < limit and (rows or not offset):
        # The last page: what matches is what came before it and on it, without counting again.
        return rows, offset + len(rows)
    return rows, matching.count()


def get_record(ticket_type, sys_id, context, names):
    """The task of `ticket_type` with `sys_id` and the fields in `names`, or None."""
    computed = computed_fields(names)
    rows = _read(_page_select(task_fields(context), computed)
                 .where((Task.sys_id == sys_id) & (Task.sys_class_name == ticket_type.table)).limit(1), computed)
    return rows[0] if rows else None


# A date-time as SQLite stores it: its first 19 characters are the value at the second.
_STORED_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?")


def time_text(value):
    """A date-time column's value as ServiceNow writes it, at the second: '' for none."""
    if isinstance(value, str):
        if _STORED_TIME.fullmatch(value):
            return value[:19]
        value = datetime.fromisoformat(value)
    if not value:
        return ""
    # isoformat() is several times cheaper than strftime(), and the same from year 1000 on.
    return value.isoformat(" ")[:19] if value.year >= 1000 else value.strftime(TIME_FORMAT)


def _text(value):
    return value or ""


def _same(value):
    return value


# Fields read straight off the task: field -> (row attribute, how its value is written as text).
PLAIN = {
    "sys_id": ("sys_id", _same), "number": ("number", _same), "sys_class_name": ("sys_class_name", _same),
    "short_description": ("short_description", _text), "category": ("category", _text),
    "opened_at": ("opened_at", time_text), "closed_at": ("closed_at", time_text),
    "sys_created_on": ("opened_at", time_text), "sys_updated_on": ("updated_at", time_text),
    "correlation_id": ("request_id", _text),
    "start_date": (COMPUTED["start_date"], time_text), "end_date": (COMPUTED["end_date"], time_text),
    "active": (COMPUTED["active"], _same),
}


def state_pair(sys_class_name, state):
    """A ticket's state as (value, display value)."""
    return str(state), contract.TICKET_TYPES[sys_class_name].state_label(state)


def approval_pair(approval):
    return approval, dict(APPROVAL_CHOICES).get(approval, approval)


def reference_walks(name, key, email):
    """The dot-walked fields of reference `name` naming `key` ('' for none): {field: value}."""
    table, _column, walks = REFERENCES[name]
    walked = {"sys_id": reference_sys_id(table, key) if key else "", "name": key, "user_name": key, "email": email}
    return {f"{name}.{walk}": walked[walk] for walk in walks if walk in walked}


def record_values(task, context, names):
    """The fields in `names` of one ticket read by find_records or get_record: (value, display value) pairs,
    references as Reference. Nothing here reads the database."""
    wanted = set(names)
    values = {name: _pair(write(getattr(task, attribute))) for name, (attribute, write) in PLAIN.items()
              if name in wanted}
    if "approval" in wanted:
        values["approval"] = approval_pair(getattr(task, COMPUTED["approval"]))
    if "state" in wanted:
        values["state"] = state_pair(task.sys_class_name, task.state)
    for name, (table, column, _walks) in REFERENCES.items():
        if not any(asked == name or asked.startswith(f"{name}.") for asked in wanted):
            continue
        key = getattr(task, column.name) or ""
        values[name] = reference(table, key) or ("", "")
        email_alias = COMPUTED.get(f"{name}.email")
        email = getattr(task, email_alias) if email_alias and f"{name}.email" in wanted else ""
        values.update({walk: _pair(value) for walk, value in reference_walks(name, key, email).items()})
    return {name: values[name] for name in names if name in values}


def _pair(value):
    return (value, value)
