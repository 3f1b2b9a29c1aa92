"""The broker's tickets as Table API records: which fields exist, their values, and queries over them."""
from datetime import datetime

from peewee import DateTimeField

from app.decisions.service import is_active
from app.itsm.base import APPROVED, NOT_REQUESTED, REJECTED, REQUESTED
from app.itsm.broker import approval_of
from app.models import Configuration, Task

APPROVAL_LABELS = {APPROVED: "Approved", REJECTED: "Rejected", REQUESTED: "Requested",
                   NOT_REQUESTED: "Not Yet Requested"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Table API field -> Task column, for conditions and orderings the database can do.
COLUMNS = {
    "number": Task.number, "sys_id": Task.sys_id, "state": Task.state, "opened_by": Task.requester,
    "correlation_id": Task.request_id, "assignment_group": Task.assignment_group,
    "short_description": Task.short_description, "category": Task.category,
    "opened_at": Task.opened_at, "sys_created_on": Task.opened_at, "sys_updated_on": Task.updated_at,
    "opened_by.user_name": Task.requester,
}
# Fields computed per record: conditions on them are applied after reading.
COMPUTED = ("approval", "active")
QUERYABLE = set(COLUMNS) | set(COMPUTED)
FIELDS = ("sys_id", "number", "sys_class_name", "state", "approval", "active", "opened_by", "short_description",
          "start_date", "end_date", "opened_at", "closed_at", "sys_created_on", "sys_updated_on", "assignment_group",
          "category", "correlation_id")
# Dot-walked fields a ServiceNow client may ask for by name (never in the default
# answer, as on an instance): the requester's user name, which PAM products and the
# broker's own ServiceNow connector read as `opened_by.user_name`.
DOT_WALKED = {"opened_by.user_name": "opened_by"}
# How many rows a query on a computed field may read before filtering.
COMPUTED_SCAN_LIMIT = 20000


def _time(value):
    return value.strftime(TIME_FORMAT) if value else ""


def _values(task, configuration):
    """Every field as (value, display_value) strings."""
    jit = task.jit_request
    approval = approval_of(task, jit)
    active = "true" if is_active(task, configuration) else "false"
    pairs = {
        "sys_id": task.sys_id, "number": task.number, "sys_class_name": task.sys_class_name,
        "opened_by": task.requester or "", "short_description": task.short_description or "",
        "start_date": _time(jit.final_start_time), "end_date": _time(jit.final_end_time),
        "opened_at": _time(task.opened_at), "closed_at": _time(task.closed_at),
        "sys_created_on": _time(task.opened_at), "sys_updated_on": _time(task.updated_at),
        "assignment_group": task.assignment_group or "", "category": task.category or "",
        "correlation_id": task.request_id or "",
    }
    values = {name: (value, value) for name, value in pairs.items()}
    values["state"] = (str(task.state), task.state_label)
    values["approval"] = (approval, APPROVAL_LABELS.get(approval, approval))
    values["active"] = (active, active)
    for name, base in DOT_WALKED.items():
        values[name] = values[base]
    return values


def record_document(task, fields, mode, configuration=None):
    """One record: values (mode "false"), display values ("true"), or both as objects ("all")."""
    values = _values(task, configuration or Configuration.default())
    if mode == "all":
        return {name: {"value": values[name][0], "display_value": values[name][1]} for name in fields}
    index = 1 if mode == "true" else 0
    return {name: values[name][index] for name in fields}


def _state_values(ticket_type, text):
    value = ticket_type.state_value(text)
    if value is None:
        return []
    return [value]


def _condition(ticket_type, condition):
    column = COLUMNS[condition.field]
    if condition.field == "state":
        values = _state_values(ticket_type, condition.value)
        if condition.operator == "=":
            return column.in_(values) if values else (Task.id < 0)
        return column.not_in(values) if values else (Task.id > 0)
    value = condition.value
    if condition.field == "number":
        value = value.upper()
    if isinstance(column, DateTimeField):
        # A value that is not a time equals no record (PostgreSQL would refuse the comparison).
        value = _time_value(value)
        if value is None:
            return (Task.id < 0) if condition.operator == "=" else (Task.id > 0)
    return (column == value) if condition.operator == "=" else (column != value)


def _time_value(text):
    try:
        return datetime.strptime(text.strip(), TIME_FORMAT)
    except ValueError:
        return None


def _computed_matches(task, conditions, configuration):
    if not conditions:
        return True
    values = _values(task, configuration)
    for condition in conditions:
        value, display = values[condition.field]
        equal = condition.value.casefold() in (value.casefold(), display.casefold())
        if equal != (condition.operator == "="):
            return False
    return True


def find_records(ticket_type, query, limit, offset):
    """(tasks of `ticket_type` matching `query`, page limit/offset applied; total matches)."""
    select = Task.select().where(Task.sys_class_name == ticket_type.table)
    computed = []
    for condition in query.conditions:
        if condition.field in COMPUTED:
            computed.append(condition)
        else:
            select = select.where(_condition(ticket_type, condition))
    orderings = [COLUMNS[name].desc() if descending else COLUMNS[name].asc()
                 for name, descending in query.order_by if name in COLUMNS]
    select = select.order_by(*orderings, Task.id) if orderings else select.order_by(Task.opened_at, Task.id)
    if not computed:
        return list(select.limit(limit).offset(offset)), select.count()
    configuration = Configuration.default()
    matching = [task for task in select.limit(COMPUTED_SCAN_LIMIT) if _computed_matches(task, computed, configuration)]
    return matching[offset:offset + limit], len(matching)
