"""`python -m bench.logs --database-url URL --rows N`: fill a broker database's logs with N rows, fast.

The incoming-request log, the calls to EPM, the service's own log and the audit log get
rows the way a busy broker writes them (a fifth, a fifth, two fifths and a fifth), spread
over the last 90 days, oldest first. Each table is filled by the database itself from a
series (INSERT ... SELECT), in batches, with no row passing through Python: ten million rows
in minutes. Request ids repeat so a filter finds a few entries, statuses and levels the way
they mix in practice.
"""
import argparse
import time

from app.audit.models import AuditEntry
from app.db import database, is_sqlite
from app.logs.models import AppLog, OutboundCall
from app.models import IncomingRequest

BATCH = 500_000
SPAN_SECONDS = 90 * 24 * 3600
# Each table's share of the rows.
SHARES = ((IncomingRequest, 0.2), (OutboundCall, 0.2), (AppLog, 0.4), (AuditEntry, 0.2))


def _dialect():
    """SQL pieces of each database: (series of `n` from `first` to `last`, a random sys_id, time of row n, text)."""
    if is_sqlite():
        return {
            "series": ("WITH RECURSIVE series(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM series "
                       "WHERE n < {last}) "),
            "from": " FROM series",
            "sys_id": "printf('%016x%016x', random(), n)",
            "at": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-{span} seconds', '+' || (n * {step}) || ' seconds')",
            "text": "CAST(n AS TEXT)",
            "blob": "CAST({text} AS BLOB)",
            "pick": "CASE n % {count} {cases} END",
            "hex": "printf('%08x', {n})",
        }
    return {
        "series": "",
        "from": " FROM generate_series({first}, {last}) AS series(n)",
        "sys_id": "md5(n::text || random()::text)",
        "at": "(now() at time zone 'utc') - interval '{span} seconds' + n * interval '{step} seconds'",
        "text": "n::text",
        "blob": "convert_to({text}, 'UTF8')",
        "pick": "CASE mod(n, {count}) {cases} END",
        "hex": "lpad(to_hex({n}), 8, '0')",
    }


def _pick(sql, values):
    """One of `values` (SQL literals) by n, in turn."""
    cases = " ".join(f"WHEN {index} THEN {value}" for index, value in enumerate(values))
    return sql["pick"].format(count=len(values), cases=cases)


def _texts(values):
    return [f"'{value}'" for value in values]


def _columns(model, sql, step):
    """Each column's SQL expression over the series' n, per table."""
    sys_id, at = sql["sys_id"], sql["at"].format(span=SPAN_SECONDS, step=step)
    number = sql["text"]
    if model is IncomingRequest:
        body = f"'{{\"RequestId\": \"bench-' || {number} || '\", \"EventType\": \"URM_Native_Ticket_Created\"}}'"
        return {"sys_id": sys_id,
                "event_type": _pick(sql, _texts(["URM_Native_Ticket_Created", "URM_Native_Ticket_Updated"])),
                "request_id": f"'bench-' || {sql['hex'].format(n='n / 2')}",
                "status": _pick(sql, _texts(["processed"] * 30 + ["duplicate", "error"])),
                "raw_body": sql["blob"].format(text=body), "content_type": "'application/json'", "headers": "'{}'",
                "source_address": "'10.0.0.5'", "received_at": at, "processed_at": at}
    if model is OutboundCall:
        return {"sys_id": sys_id, "method": "'POST'", "url": "'https://epm.example/api/v1/decision'",
                "path": "'/api/v1/decision'", "status": "200", "duration_ms": "42.5", "attempt": "1",
                "what": _pick(sql, _texts(["application decision", "admin decision", "token"])), "created_at": at}
    if model is AppLog:
        return {"sys_id": sys_id, "created_at": at, "level": _pick(sql, _texts(["WARNING"] * 9 + ["ERROR"])),
                "level_number": _pick(sql, ["30"] * 9 + ["40"]),
                "logger": _pick(sql, _texts(["app.epm.client", "app.jobs.delivery", "app.intake"])),
                "message": f"'EPM answered 503 for decision ' || {number}",
                "request_id": f"'req-' || {sql['hex'].format(n='n')}"}
    return {"sys_id": sys_id, "created_at": at, "actor": _pick(sql, _texts(["jchen", "mrivera", "admin", "system"])),
            "action": _pick(sql, _texts(["decision", "configuration_updated", "sign_in", "replay"])),
            "object_type": "'ticket'", "object_id": f"'INC' || {number}", "detail": "'{}'",
            "previous_hash": "''", "entry_hash": f"{sys_id} || {sys_id}"}


def _fill(model, count):
    """Append `count` rows to `model`'s table in batches (each its own transaction)."""
    sql = _dialect()
    step = SPAN_SECONDS / max(count, 1)
    columns = _columns(model, sql, step)
    names = ", ".join(f'"{name}"' for name in columns)
    values = ", ".join(columns.values())
    table = model._meta.table_name
    for first in range(1, count + 1, BATCH):
        last = min(first + BATCH - 1, count)
        statement = (sql["series"].format(first=first, last=last) + f'INSERT INTO "{table}" ({names}) SELECT {values}'
                     + sql["from"].format(first=first, last=last))
        with database.atomic():
            database.execute_sql(statement)


def generate_logs(rows):
    """Add about `rows` log rows over the four logs, then gather statistics; returns seconds taken."""
    started = time.monotonic()
    for model, share in SHARES:
        _fill(model, int(rows * share))
    database.execute_sql("ANALYZE")
    return round(time.monotonic() - started, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.logs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="sqlite:///path or postgresql://...")
    parser.add_argument("--rows", type=int, required=True)
    args = parser.parse_args(argv)
    from bench import broker

    broker.prepare(args.database_url)
    with broker.broker_app(args.database_url):
        seconds = generate_logs(args.rows)
    print(f"added {args.rows} log rows in {seconds} s")


if __name__ == "__main__":
    main()
