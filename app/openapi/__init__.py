"""`GET /openapi.json`: the OpenAPI description of the JSON API (app/openapi/spec.py).

Public, like the source it is built from: it names routes and fields, never data.
Built once per app, on first request. Requests are held to what the description can
mean, with a 400: a query parameter given twice on the JSON API, and a NUL character
in a query or path parameter or a form field anywhere (PostgreSQL refuses NUL in any text, even to
compare, so pages and API alike would answer 500).
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


def check_parameters():
    """Refuse a request whose parameters the views could only misread or fail on.

    EPM's webhook is left alone: it stores every delivery as it came (NULs become U+FFFD).
    """
    if request.path == contract.WEBHOOK_PATH:
        return None
    parameters = [value for _name, values in request.args.lists() for value in values]
    parameters += [value for value in (request.view_args or {}).values() if isinstance(value, str)]
    if any("\x00" in value for value in parameters):
        raise BadRequest("A parameter cannot contain a NUL character", "remove it from the query or the path")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields = [value for _name, values in request.form.lists() for value in values]
        if any("\x00" in value for value in fields):
            raise BadRequest("A form field cannot contain a NUL character", "remove it and send the form again")
    # Browser forms may repeat a name (several choices); the JSON API's parameters take one value.
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated and request.path.startswith("/api/"):
        raise BadRequest("Give each query parameter once", f"given more than once: {', '.join(repeated)}",
                         extra={"fields": {name: "given more than once" for name in repeated}})
    return None


def init_app(app):
    app.register_blueprint(bp)
    app.before_request(check_parameters)
