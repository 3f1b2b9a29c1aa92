"""`GET /openapi.json`: the OpenAPI description of the JSON API (app/openapi/spec.py).

Public, like the source it is built from: it names routes and fields, never data.
Built once per app, on first request. The API also refuses what the description cannot
mean: a query parameter given twice.
"""
from flask import Blueprint, current_app, jsonify, request

from app import contract
from app.errors import BadRequest

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_document():
    from app.openapi.spec import build_spec

    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_spec()
    return jsonify(document)


def _one_value_per_query_parameter():
    """400 for `?action=a&action=b` on the JSON API: every parameter takes one value, and the
    views would silently read only the first. EPM's webhook reads no parameters and is left alone."""
    if not request.path.startswith("/api/") or request.path == contract.WEBHOOK_PATH:
        return None
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise BadRequest("Give each query parameter once", f"given more than once: {', '.join(repeated)}",
                         extra={"fields": {name: "given more than once" for name in repeated}})
    return None


def init_app(app):
    app.register_blueprint(bp)
    app.before_request(_one_value_per_query_parameter)
