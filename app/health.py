"""`GET /healthz`: whether this process can reach its database, for load balancers."""
from flask import Blueprint, jsonify

from app.db import ping

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    if ping():
        return jsonify(status="ok")
    return jsonify(status="unavailable", error="database unreachable"), 503
