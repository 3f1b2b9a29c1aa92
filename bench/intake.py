"""The intake phase: EPM's webhook under load with real Basic auth, on SQLite and PostgreSQL.

Every request is a new delivery built from the fixtures (tests/fixtures): a created
event, then the update event for the same RequestId, alternating Application Access
and Admin Access. Afterwards the stored rows are counted: every 2xx must have its row.
"""
import base64
import json
import re
import secrets
from pathlib import Path

from app import contract
from bench import wrk

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
# Created then update, URM then Admin: the order bench/lua/intake.lua indexes BODIES by.
FIXTURE_ORDER = ("urm_ticket_created", "urm_decision_update", "admin_ticket_created", "admin_ticket_updated")
_MARKER = "@@REQUEST_ID@@"


def _lua_string(text):
    level = "=" * 4
    assert f"]{level}]" not in text
    return f"[{level}[{text}]{level}]"


def intake_script():
    """bench/lua/intake.lua with the fixtures' bodies split around their RequestId."""
    bodies = []
    for name in FIXTURE_ORDER:
        document = json.loads((FIXTURES / f"{name}.json").read_text())
        document["RequestId"] = _MARKER
        prefix, suffix = json.dumps(document).split(_MARKER)
        bodies.append(f"{{{_lua_string(prefix)}, {_lua_string(suffix)}}}")
    table = "BODIES = {" + ", ".join(bodies) + "}\n"
    source = (wrk.SCRIPTS / "intake.lua").read_text()
    # dofile() finds report.lua next to the script, so the generated copy names it absolutely.
    source = source.replace('dofile(string.gsub(debug.getinfo(1, "S").source:sub(2), "intake.lua$", "report.lua"))',
                            f'dofile("{wrk.SCRIPTS / "report.lua"}")')
    return wrk.write_script(table + source)


def load(url, username, password, seconds, connections=wrk.CONNECTIONS, tag=None):
    """Run wrk against the webhook; returns wrk's result. The same `tag` repeats the same RequestIds."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    script = intake_script()
    try:
        return wrk.run(f"{url}{contract.WEBHOOK_PATH}", script, seconds, script_args=[tag or secrets.token_hex(4)],
                       headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
                       connections=connections)
    finally:
        Path(script).unlink(missing_ok=True)


def stored_rows():
    """What the database holds after the load (call inside the app's context)."""
    from app.models import IncomingRequest, Task

    from peewee import fn

    created = [event.name for event in contract.EVENT_TYPES.values() if event.is_created]
    by_status = dict(IncomingRequest.select(IncomingRequest.status, fn.COUNT(IncomingRequest.id))
                     .group_by(IncomingRequest.status).tuples())
    numbers = sorted(int(re.sub(r"\D", "", number)) for number, in Task.select(Task.number).tuples())
    gap_free = not numbers or numbers[-1] - numbers[0] + 1 == len(numbers)
    return {"incoming_requests": sum(by_status.values()), "incoming_by_status": by_status,
            "created_request_ids": (IncomingRequest.select(IncomingRequest.request_id).distinct()
                                    .where(IncomingRequest.event_type.in_(created)).count()),
            "tickets": len(numbers), "numbers_gap_free": gap_free,
            "duplicate_request_ids": Task.select().count() - Task.select(Task.request_id).distinct().count()}
