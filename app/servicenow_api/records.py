"""The broker's tickets as Table API records of incident, change_request, sc_task and sc_req_item.

Every field a record shows can be queried and ordered by: computed ones (`approval`, `active`,
the access window) as SQL expressions, so a query, its count and its page are one database
answer however the conditions are combined."""
from datetime import datetime

from peewee import Case, Value, fn

from app import contract
from app.itsm.base import APPROVED, NOT_REQUESTED, REJECTED, REQUESTED
from app.models import AdminTicket, ApplicationAccessTicket, Decision, Task
from app.servicenow_api import compiler
from app.servicenow_api.fields import GROUP_TABLE, USER_TABLE, Field, reference
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
        fields += [Field(f"{name}.{walk}", kind, make(column)) for walk, (kind, make) in walks.items()]
    return {field.name: field for field in fields}


# Fields computed in SQL (subqueries on the JIT record, the decisions, the accounts): selected with the page
# under these names, so a page of thousands of records is one query, not one or more per record.
COMPUTED = {"approval": "snow_approval", "active": "snow_active", "start_date": "snow_start_date",
            "end_date": "snow_end_date", "opened_by.email": "snow_opened_by_email"}


# The Task columns a record's fields come from (the search document's columns are never shown).
RECORD_COLUMNS = (Task.id, Task.sys_id, Task.number, Task.sys_class_name, Task.state, Task.short_description,
                  Task.category, Task.request_id, Task.requester, Task.assignment_group, Task.opened_at,
                  Task.closed_at, Task.updated_at)


def _page_select(fields, names):
    """Task rows with the computed fields among `names` as extra columns."""
    extra = [fields[name].expression.alias(alias) for name, alias in COMPUTED.items() if name in names]
    return Task.select(*RECORD_COLUMNS, *extra)


def find_records(ticket_type, query, limit, offset, context, names):
    """(tasks of `ticket_type` matching `query`, one page with the fields in `names`; how many match in all)."""
    fields = task_fields(context)
    condition = (Task.sys_class_name == ticket_type.table) & compiler.compile_query(query, fields, context)
    orderings = [fields[name].expression.desc() if descending else fields[name].expression.asc()
                 for name, descending in query.order_by]
    page = _page_select(fields, names).where(condition)
    page = page.order_by(*orderings, Task.id) if orderings else page.order_by(Task.opened_at, Task.id)
    return list(page.limit(limit).offset(offset)), Task.select(Task.id).where(condition).count()


def get_record(ticket_type, sys_id, context, names):
    """The task of `ticket_type` with `sys_id` and the fields in `names`, or None."""
    return (_page_select(task_fields(context), names)
            .where((Task.sys_id == sys_id) & (Task.sys_class_name == ticket_type.table)).first())


def _time(value):
    if isinstance(value, str):
        # SQLite answers a computed date-time column as its stored text.
        value = datetime.fromisoformat(value)
    return value.strftime(TIME_FORMAT) if value else ""


# Fields read straight off the task: each made only when asked for, so a page of thousands of records pays
# for the fields it shows.
PLAIN = {
    "sys_id": lambda task: task.sys_id, "number": lambda task: task.number,
    "sys_class_name": lambda task: task.sys_class_name,
    "short_description": lambda task: task.short_description or "", "category": lambda task: task.category or "",
    "opened_at": lambda task: _time(task.opened_at), "closed_at": lambda task: _time(task.closed_at),
    "sys_created_on": lambda task: _time(task.opened_at), "sys_updated_on": lambda task: _time(task.updated_at),
    "correlation_id": lambda task: task.request_id or "",
}


def record_values(task, context, names):
    """The fields in `names` of one ticket read by find_records or get_record: (value, display value) pairs,
    references as Reference. Nothing here reads the database."""
    wanted = set(names)
    computed = {name: getattr(task, alias) for name, alias in COMPUTED.items() if name in wanted}
    values = {}
    if "approval" in computed:
        values["approval"] = (computed["approval"], dict(APPROVAL_CHOICES).get(computed["approval"],
                                                                                computed["approval"]))
    values.update({name: _pair(_time(computed[name])) for name in ("start_date", "end_date") if name in computed})
    if "active" in computed:
        values["active"] = _pair(computed["active"])
    values.update({name: _pair(PLAIN[name](task)) for name in wanted if name in PLAIN})
    if "state" in wanted:
        values["state"] = (str(task.state), task.state_label)
    for name, (table, column, walks) in REFERENCES.items():
        if not any(asked == name or asked.startswith(f"{name}.") for asked in wanted):
            continue
        key = getattr(task, column.name) or ""
        values[name] = reference(table, key) or ("", "")
        walked = {"sys_id": values[name].sys_id if key else "", "name": key, "user_name": key,
                  "email": computed.get(f"{name}.email", "")}
        values.update({f"{name}.{walk}": _pair(walked[walk]) for walk in walks if walk in walked})
    return {name: values[name] for name in names if name in values}


def _pair(value):
    return (value, value)
