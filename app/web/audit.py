"""The audit log for admins: the `/admin/audit` page and its JSON twin under the API prefix.

Both filter by actor, action and a date range. The page shows the newest entries
first in keyset pages by id; the API answers oldest first, in the order the chain
runs and exports use, with limit/offset paging that new entries do not shift.
"""
from flask import Blueprint, jsonify, render_template, request

from app import contract
from app.audit import service
from app.audit.models import AuditEntry
from app.auth.basic import require_roles
from app.errors import BadRequest
from app.auth.access import require_page_roles

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50
API_DEFAULT_LIMIT = 100
API_MAX_LIMIT = 1000


def _filters(args):
    """actor, action, since and until from query arguments; BadRequest names a bad date or number."""
    errors = {}
    bounds = {}
    for name, end in (("since", False), ("until", True)):
        try:
            bounds[name] = service.parse_bound(args.get(name, ""), end=end)
        except ValueError as error:
            errors[name] = str(error)
    if errors:
        raise BadRequest("Invalid query", "; ".join(f"{name}: {message}" for name, message in errors.items()),
                         extra={"fields": errors})
    return {"actor": args.get("actor", "").strip()[:150], "action": args.get("action", "").strip()[:64], **bounds}


def _integer(args, name, default, lowest, highest):
    text = args.get(name, "")
    if text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lowest <= value <= highest:
        raise BadRequest("Invalid query", f"{name}: a whole number from {lowest} to {highest}",
                         extra={"fields": {name: f"a whole number from {lowest} to {highest}"}})
    return value


def describe_detail(detail):
    """An entry's details as one line: `old → new; field: old → new; other: value`."""
    detail = dict(detail or {})
    parts = []
    if {"old", "new"} <= set(detail):
        parts.append(f"{detail.pop('old')!s} → {detail.pop('new')!s}")
    for name, value in detail.items():
        if isinstance(value, dict) and set(value) == {"old", "new"}:
            value = f"{value['old']!s} → {value['new']!s}"
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


@bp.get(f"{contract.API_PREFIX}/audit")
@require_roles(contract.ROLE_ADMIN)
def audit_api():
    filters = _filters(request.args)
    limit = _integer(request.args, "limit", API_DEFAULT_LIMIT, 1, API_MAX_LIMIT)
    offset = _integer(request.args, "offset", 0, 0, 10**12)
    query = service.entries_between(**filters).limit(limit).offset(offset)
    return jsonify(result=[service.entry_document(entry) for entry in query])


@bp.get("/admin/audit")
@require_page_roles(contract.ROLE_ADMIN)
def audit_page():
    try:
        filters = _filters(request.args)
        error = None
    except BadRequest as problem:
        filters = {"actor": request.args.get("actor", ""), "action": request.args.get("action", ""),
                   "since": None, "until": None}
        error = problem.detail
    query = service.entries_between(**filters).order_by(AuditEntry.id.desc())
    before = _integer(request.args, "before", 0, 0, 2**63 - 1)
    if before:
        query = query.where(AuditEntry.id < before)
    entries = list(query.limit(PAGE_SIZE + 1))
    older = entries[PAGE_SIZE - 1].id if len(entries) > PAGE_SIZE else None
    rows = [{"entry": entry, "detail": describe_detail(entry.detail)} for entry in entries[:PAGE_SIZE]]
    form = {name: request.args.get(name, "") for name in ("actor", "action", "since", "until")}
    actions = [row.action for row in AuditEntry.select(AuditEntry.action).distinct().order_by(AuditEntry.action)]
    return render_template(
        "admin/audit.html", rows=rows, form=form, error=error, older=older, is_first_page=not before,
        filter_args={name: value for name, value in form.items() if value},
        action_choices=[(action, action) for action in actions],
    ), 400 if error else 200
