"""The audit log page for admins (`/admin/audit`): newest entries first, in keyset pages by id.

It filters by actor, action and a date range, as the JSON twin in ops/api.py does.
"""
from flask import Blueprint, render_template, request
from marshmallow import EXCLUDE, fields, validate

from app import contract
from app.audit import keys, service
from app.auth.access import require_page_roles
from app.errors import BadRequest
from app.fields import MAX_ROW_ID, load_query

bp = Blueprint("audit", __name__)

PAGE_SIZE = 50


class _PageQuery(service.AuditFilterSchema):
    before = fields.Integer(load_default=0, validate=validate.Range(0, MAX_ROW_ID))

    class Meta:
        unknown = EXCLUDE


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


@bp.get("/admin/audit")
@require_page_roles(contract.ROLE_ADMIN)
def audit_page():
    try:
        filters = load_query(_PageQuery(), request.args, blank_is_missing=True)
        error = None
    except BadRequest as problem:
        filters = {"actor": request.args.get("actor", ""), "action": request.args.get("action", ""),
                   "since": None, "until": None, "before": 0}
        error = problem.detail
    before = filters.pop("before")
    entries = service.newest_entries(filters, before, PAGE_SIZE + 1)
    older = entries[PAGE_SIZE - 1].id if len(entries) > PAGE_SIZE else None
    rows = [{"entry": entry, "detail": describe_detail(entry.detail)} for entry in entries[:PAGE_SIZE]]
    form = {name: request.args.get(name, "") for name in ("actor", "action", "since", "until")}
    return render_template(
        "admin/audit.html", rows=rows, form=form, error=error, older=older, is_first_page=not before,
        filter_args={name: value for name, value in form.items() if value},
        action_choices=[(action, action) for action in service.action_names()], audit_keys=keys.current(),
    ), 400 if error else 200
