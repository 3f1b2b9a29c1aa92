"""`GET /openapi.json`: the OpenAPI description of the JSON API (app/openapi/spec.py).

Public, like the source it is built from: it names routes and fields, never data.
Built once per app, on first request. app/http.py holds requests to what it can mean.
"""
from flask import Blueprint, current_app, jsonify

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_document():
    from app.openapi.spec import build_spec

    document = current_app.extensions.get("openapi")
    if document is None:
        document = current_app.extensions["openapi"] = build_spec()
    return jsonify(document)


def init_app(app):
    app.register_blueprint(bp)
