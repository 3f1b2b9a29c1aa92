"""`GET /openapi.json`: the OpenAPI description of the JSON API (app/openapi/spec.py).

Public, like the source it is built from: it names routes and fields, never data.
Built once per app, on first request. The API also refuses, with a 400, what the
description cannot mean: a query parameter given twice, and a NUL character in a
query or path parameter (PostgreSQL refuses NUL in any text, even to compare).
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


def check_api_request():
    """Refuse a JSON API request whose parameters the views could only misread or fail on.

    EPM's webhook is left alone: it stores every delivery as it came (NULs become U+FFFD).
    """
    if not request.path.startswith("/api/") or request.path == contract.WEBHOOK_PATH:
        return None
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated:
        raise BadRequest("Give each query parameter once", f"given more than once: {', '.join(repeated)}",
                         extra={"fields": {name: "given more than once" for name in repeated}})
    parameters = [*request.args.values(), *(request.view_args or {}).values()]
    if any(isinstance(value, str) and "\x00" in value for value in parameters):
        raise BadRequest("A parameter cannot contain a NUL character", "remove it from the query or the path")
    return None


def init_app(app):
    app.register_blueprint(bp)
    app.before_request(check_api_request)
