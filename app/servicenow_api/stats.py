"""The Aggregate API subset dashboards use to count tickets: `GET /api/now/stats/{table}`.

`sysparm_count=true` counts the records `sysparm_query` matches (without it the stats are empty,
as an instance answers a request for no aggregate); `sysparm_group_by` (comma-separated
fields) counts per distinct value, one database query either way. The answer has ServiceNow's
shape: `{"result": {"stats": {"count": "n"}}}`, or with grouping a list of
`{"stats": {"count": "n"}, "groupby_fields": [{"field": f, "value": v}]}`."""
from flask import Blueprint, jsonify, request
from peewee import fn

from app.auth.basic import require_roles
from app.errors import BadRequest
from app.models import Task
from app.servicenow_api import compiler
from app.servicenow_api.fields import reference_sys_id
from app.servicenow_api.records import REFERENCES, time_text
from app.servicenow_api.tables import TICKET_TABLES
from app.servicenow_api.views import TABLE_API_ROLES, base_url, flag, parsed_query, table_named

bp = Blueprint("stats", __name__)


def _group_value(name, kind, value):
    """A grouped value of field `name` (of `kind`) as the Table API writes it: a reference (or its dot-walked
    sys_id) as its sys_id, a time at the second (SQLite answers a computed one, as start_date, as text)."""
    if value is None:
        return ""
    if isinstance(kind, compiler.DateTime):
        return time_text(value)
    reference = REFERENCES.get(name.removesuffix(".sys_id"))
    if reference is not None and value:
        return reference_sys_id(reference[0], value)
    return str(value)


def _groups(group_by, kinds, rows):
    """{the values shown: count} of the database's groups (rows of values, then a count), in their order; `kinds`:
    the kind of each field grouped by. Groups showing the same values are one: times stored with microseconds are
    shown, and so grouped, at the second."""
    counts = {}
    for row in rows:
        shown = tuple(_group_value(name, kind, value) for name, kind, value in zip(group_by, kinds, row))
        counts[shown] = counts.get(shown, 0) + row[-1]
    return counts


@bp.get("/stats/<table>")
@bp.get("/v1/stats/<table>")
@require_roles(*TABLE_API_ROLES, allow_session=False)
def aggregate(table):
    if table not in TICKET_TABLES:
        raise BadRequest(f"Invalid table {table}", f"statistics are kept for {', '.join(TICKET_TABLES)}")
    served = table_named(table)
    context = served.context(base_url())
    fields = served.fields(context)
    query = parsed_query()
    group_by = [name.strip() for name in request.args.get("sysparm_group_by", "").split(",") if name.strip()]
    counted = flag("sysparm_count")
    try:
        unknown = [name for name in group_by if name not in fields]
        if unknown:
            raise compiler.NoRows(unknown[0])
        where = (Task.sys_class_name == served.ticket_type.table) & compiler.compile_query(query, fields, context)
    except compiler.NoRows:
        return jsonify(result=[] if group_by else {"stats": {"count": "0"} if counted else {}})
    if not group_by:
        return jsonify(result={"stats": {"count": str(Task.select().where(where).count())} if counted else {}})
    columns = [fields[name].expression for name in group_by]
    select = (Task.select(*columns, fn.COUNT(Task.id)).where(where).group_by(*columns)
              .order_by(*columns).tuples())
    return jsonify(result=[
        {"stats": {"count": str(count)} if counted else {},
         "groupby_fields": [{"field": name, "value": value} for name, value in zip(group_by, shown)]}
        for shown, count in _groups(group_by, [fields[name].kind for name in group_by], select).items()])
