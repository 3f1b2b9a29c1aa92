"""`GET /healthz` and `GET /readyz`, for load balancers and orchestrators.

`/healthz` says this process is up and reaches its database. `/readyz` says the
deployment can do its work: the database answers, its schema is the one this code
expects (`jitbroker init` has run after an upgrade), and a `jitbroker scheduler`
renewed its heartbeat recently, so decision retries and other jobs are running.
"""
import peewee
from flask import Blueprint, jsonify

from app.db import ping

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    if ping():
        return jsonify(status="ok")
    return jsonify(status="unavailable", error="database unreachable"), 503


def _migrations_check():
    from app.migrations import MIGRATIONS
    from app.models import SchemaVersion

    applied = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
    missing = sorted({version for version, _description, _step in MIGRATIONS} - applied)
    if missing:
        return False, f"migrations {', '.join(map(str, missing))} not applied: run `jitbroker init`"
    return True, f"schema version {max(applied)}"


def _scheduler_check():
    from app.jobs.lease import STALE_AFTER_SECONDS, heartbeat_age_seconds

    age = heartbeat_age_seconds()
    if age is None:
        return False, "no scheduler has run: start `jitbroker scheduler`"
    if age > STALE_AFTER_SECONDS:
        return False, f"scheduler heartbeat is {age:.0f} s old (limit {STALE_AFTER_SECONDS} s)"
    return True, f"scheduler heartbeat {age:.0f} s ago"


@bp.get("/readyz")
def readyz():
    """200 when every check passes, else 503; the body names each check's result."""
    if not ping():
        return jsonify(status="not ready", checks={"database": "unreachable"}), 503
    checks, ready = {"database": "ok"}, True
    for name, check in (("migrations", _migrations_check), ("scheduler", _scheduler_check)):
        try:
            passed, message = check()
        except (peewee.DatabaseError, peewee.InterfaceError) as error:
            # A table missing because `jitbroker init` never ran lands here too.
            passed, message = False, f"unavailable: {str(error).splitlines()[0]}"
        checks[name] = message
        ready = ready and passed
    return jsonify(status="ready" if ready else "not ready", checks=checks), 200 if ready else 503
