"""The Table API views: a read-only subset of ServiceNow's Table API over the broker's tickets and the people
they name, Basic auth only.

A PAM product or a script using pysnc or pysnow can check a JIT ticket against the broker as it
would against an instance: `/api/now/table`, `/api/now/v1/table` and `/api/now/v2/table` alike,
encoded queries, paging with `Link` and `X-Total-Count`, references, dot-walking, display values,
and the Batch (app/servicenow_api/batch.py) and Aggregate (app/servicenow_api/stats.py) subsets."""
import json
from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider

from app import contract
from app.auth.basic import require_roles
from app.errors import BadRequest, NotFound
from app.fields import MAX_OFFSET
from app.servicenow_api.compiler import NoRows, Unordered
from app.servicenow_api.fields import written_record
from app.servicenow_api.query import QueryError, parse_query
from app.servicenow_api.tables import TABLES

bp = Blueprint("servicenow_table_api", __name__, url_prefix="/api/now")

TABLE_API_ROLES = (contract.ROLE_USER, contract.ROLE_ADMIN, contract.ROLE_READER)
# An instance answers at most glide.processor.json.row_limit records (10,000 by default) per
# request, whatever sysparm_limit asks for; the Link header leads to the rest.
MAX_LIMIT = 10000
DEFAULT_LIMIT = MAX_LIMIT
DISPLAY_MODES = ("false", "true", "all")
TABLE_PATHS = ("/table/<table>", "/v1/table/<table>", "/v2/table/<table>")


def table_named(name):
    if name not in TABLES:
        raise BadRequest(f"Invalid table {name}", f"this API serves {', '.join(TABLES)}")
    return TABLES[name]


def whole_number(name, default, low, high, capped=False):
    """A whole-number parameter from `low` to `high`; above `high` refused, or answered as `high` when `capped`."""
    text = request.args.get(name, "").strip()
    if not text:
        return default
    # ASCII only: "²" is a digit to isdigit() but not to int().
    if not (text.isascii() and text.isdigit()) or int(text) < low or (int(text) > high and not capped):
        raise BadRequest(f"Invalid {name}", f"a whole number from {low}" + ("" if capped else f" to {high}"))
    return min(int(text), high)


def display_mode():
    mode = request.args.get("sysparm_display_value", "false").lower() or "false"
    if mode not in DISPLAY_MODES:
        raise BadRequest("Invalid sysparm_display_value", "use true, false or all")
    return mode


def flag(name):
    """A true/false parameter in any case, as pysnow sends `True` (absent or empty: false); anything else is
    refused rather than guessed."""
    text = request.args.get(name, "").lower()
    if text not in ("", "true", "false"):
        raise BadRequest(f"Invalid {name}", "use true or false")
    return text == "true"


def asked_fields(table, context):
    """The fields of `sysparm_fields` the table has (others left out, as an instance does), else its defaults."""
    names = [name.strip() for name in request.args.get("sysparm_fields", "").split(",") if name.strip()]
    known = table.fields(context)
    return [name for name in names if name in known] if names else list(table.default_fields)


def parsed_query():
    try:
        return parse_query(request.args.get("sysparm_query", ""))
    except QueryError as error:
        raise BadRequest("Invalid sysparm_query", str(error)) from None


def answer_format():
    """(display mode, whether references carry links), checked before any record is read."""
    return display_mode(), not flag("sysparm_exclude_reference_link")


def document(table, row, names, context, answer):
    """One record as the answer holds it: {field: written value}."""
    return written_record(table.values(row, context, names), names, answer, context)


def _writes_compact_json():
    """Whether jsonify writes as fields.dumps does: Flask's own JSON, out of debug mode."""
    provider = current_app.json
    compact = provider.compact if provider.compact is not None else not current_app.debug
    return isinstance(provider, DefaultJSONProvider) and provider.sort_keys and provider.ensure_ascii and compact


def result_answer(text):
    """The answer `{"result": ...}` around the JSON text of its records, as jsonify(result=...) writes it."""
    if not _writes_compact_json():
        return jsonify(result=json.loads(text))
    return current_app.response_class(f'{{"result":{text}}}\n', mimetype=current_app.json.mimetype)


def base_url():
    return request.host_url.rstrip("/")


def page_links(limit, offset, total):
    """ServiceNow's Link header: first and last always, prev and next where there is such a page."""
    def link(page_offset, relation):
        args = {**request.args.to_dict(), "sysparm_offset": str(page_offset), "sysparm_limit": str(limit)}
        return f'<{request.base_url}?{urlencode(args)}>;rel="{relation}"'

    last = max(total - 1, 0) // limit * limit
    parts = [link(0, "first")]
    if offset > 0:
        parts.append(link(max(offset - limit, 0), "prev"))
    if offset + limit < total:
        parts.append(link(offset + limit, "next"))
    parts.append(link(last, "last"))
    return ",".join(parts)


@require_roles(*TABLE_API_ROLES, allow_session=False)
def list_records(table):
    served = table_named(table)
    context = served.context(base_url())
    query = parsed_query()
    limit = whole_number("sysparm_limit", DEFAULT_LIMIT, 1, MAX_LIMIT, capped=True)
    offset = whole_number("sysparm_offset", 0, 0, MAX_OFFSET)
    names, answer = asked_fields(served, context), answer_format()
    suppress_links = flag("sysparm_suppress_pagination_header")
    try:
        rows, total = served.find(query, limit, offset, context, names)
    except NoRows:
        rows, total = [], 0
    except Unordered as error:
        raise BadRequest("Invalid sysparm_query", str(error)) from None
    write = served.writer(names, context, answer)
    response = result_answer("[" + ",".join([write(row) for row in rows]) + "]")
    response.headers["X-Total-Count"] = str(total)
    if not suppress_links:
        response.headers["Link"] = page_links(limit, offset, total)
    return response


@require_roles(*TABLE_API_ROLES, allow_session=False)
def get_record(table, sys_id):
    served = table_named(table)
    context = served.context(base_url())
    names, answer = asked_fields(served, context), answer_format()
    row = served.get(sys_id, context, names)
    if row is None:
        raise NotFound("No Record found", "Record doesn't exist or ACL restricts the record retrieval")
    return result_answer(served.writer(names, context, answer)(row))


for _path in TABLE_PATHS:
    bp.add_url_rule(_path, view_func=list_records, methods=["GET"])
    bp.add_url_rule(f"{_path}/<sys_id>", view_func=get_record, methods=["GET"])
