"""The Table API phase: the lookups PAM products and scripts send over a large history.

A LIKE query (a person's tickets, `opened_byLIKE<name>`, as a PAM checks who a ticket is for) and an
IN query (ten ticket numbers, `numberIN...`), each in rotation over several people and sets of
numbers, against gunicorn with the default settings. Each answer is the records as pysnc reads them
without a field list: the default fields (references, approval, active, the access window) of every
match in one page (no sysparm_limit: ServiceNow's 10,000). Loaded with wrk by one client (what a PAM
product checking a ticket waits for; the target) and by 16 connections (a busy hour on 2 sync workers).
`python -m bench --phase table_api_sqlite --phase table_api_postgresql`; the target is one client's
p95 <= 150 ms at 1,000,000 tickets on both databases.
"""
import base64
import json
import urllib.request
from urllib.parse import urlencode

from app.models import Account, Task
from bench import broker, generate, servers, wrk

PEOPLE = 5
NUMBER_SETS = 5
PATH = "/api/now/table/incident"
TARGET_P95_MS = 150


CLIENTS = {"one_client": 1, "connections_16": wrk.CONNECTIONS}


def _path(query):
    return f"{PATH}?{urlencode({'sysparm_query': query})}"


def targets(total):
    """{query name: the paths it rotates through}, from tickets spread over the whole history."""
    spread = [list(Task.select(Task.requester, Task.number).order_by(Task.id).offset(total * n // 11).limit(10))
              for n in range(1, 11)]
    people = [rows[0].requester.split("\\")[-1] for rows in spread[:PEOPLE]]
    number_sets = [[row.number for row in spread[n]] for n in range(NUMBER_SETS)]
    return {
        "like_person": [_path(f"opened_byLIKE{person}^ORDERBYDESCopened_at") for person in people],
        "in_numbers": [_path("numberIN" + ",".join(numbers)) for numbers in number_sets],
    }


def _records(url, path, auth):
    """How many records the answer to `path` holds (the page the bench renders)."""
    request = urllib.request.Request(url + path, headers={"Authorization": auth})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return len(json.load(answer)["result"])


def measure(backend, size, options):
    """Generate `size` tickets on `backend`, then load each query; returns wrk's numbers per query."""
    with servers.database_for(backend, options.scratch, f"table{size}") as db:
        broker.prepare(db.url)
        with broker.broker_app(db.url):
            seconds = generate.generate(size)
            paths = targets(size)
            assert Account.by_username(broker.APPROVER) is not None
        results = {"tickets": size, "generate_seconds": seconds, "queries": {}}
        auth = "Basic " + base64.b64encode(f"{broker.APPROVER}:{broker.PASSWORD}".encode()).decode()
        with servers.Gunicorn("app:create_app()", env=broker.server_env(db.url)) as server:
            for name, rotation in paths.items():
                wrk.run(server.url, "paths.lua", 1, script_args=rotation, headers={"Authorization": auth})
                query = {"paths": rotation}
                for clients, connections in CLIENTS.items():
                    query[clients] = wrk.run(server.url, "paths.lua", options.seconds, script_args=rotation,
                                             headers={"Authorization": auth}, connections=connections,
                                             threads=min(connections, wrk.THREADS))
                one = query["one_client"]
                query["records"] = [_records(server.url, path, auth) for path in rotation]
                query["target_met"] = one["non_2xx"] == 0 and one["latency_ms"]["p95"] <= TARGET_P95_MS
                results["queries"][name] = query
            results["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return results


# The report (bench/report.py): the target per query and backend, and the table of numbers.

def _run(query, clients):
    """One load run of a query; reports from before the one-client runs hold only the 16-connection one."""
    return query.get(clients) or query


def _p95(result):
    return result["latency_ms"]["p95"] if result["requests"] else float("inf")


def check_targets(phases, target):
    """One target per query and backend the run measured, made by `target(what, target, measured, met)`."""
    checks = []
    for backend in ("sqlite", "postgresql"):
        phase = phases.get(f"table_api_{backend}")
        for name, query in (phase or {}).get("queries", {}).items():
            one = _run(query, "one_client")
            p95 = _p95(one)
            clients = "" if "one_client" in query else " with 16 connections (one client not measured)"
            checks.append(target(
                f"Table API {name.replace('_', ' ')} at {phase['tickets']:,} tickets, {backend}",
                f"one client p95 <= {TARGET_P95_MS} ms, no error",
                f"p95 {p95} ms{clients}, {one['non_2xx']} non-2xx" if p95 != float("inf") else
                "no request answered within the run", p95 <= TARGET_P95_MS and one["non_2xx"] == 0))
    return checks


def markdown_lines(phases, row):
    """The numbers of the table_api phases as Markdown lines (none when the run had neither), rows made by `row`."""
    measured = [(backend, phases[f"table_api_{backend}"]) for backend in ("sqlite", "postgresql")
                if f"table_api_{backend}" in phases]
    if not measured:
        return []
    lines = ["", "ServiceNow Table API lookups (`like_person`: `opened_byLIKE<person>^ORDERBYDESCopened_at`, "
             "`in_numbers`: `numberIN` ten numbers; the default fields of every match in one page; p50 / p95 ms):", "",
             "| query | backend | tickets | records per answer | one client p50 / p95 | 16 connections p50 / p95 "
             "| req/s with 16 | non-2xx |", "|---|---|---|---|---|---|---|---|"]
    for backend, phase in measured:
        for name, query in phase["queries"].items():
            one, many = query.get("one_client"), _run(query, "connections_16")
            records = query.get("records")
            lines.append(row(name, backend, f"{phase['tickets']:,}",
                             f"{min(records)} to {max(records)}" if records else "-",
                             _percentiles(one) if one else "not measured", _percentiles(many),
                             many["requests_per_second"], many["non_2xx"] + (one["non_2xx"] if one else 0)))
    return lines


def _percentiles(result):
    return f"{result['latency_ms']['p50']} / {result['latency_ms']['p95']}" if result["requests"] else "no answer"


METHOD = """- **ServiceNow Table API** (`table_api_sqlite`, `table_api_postgresql`): the large history
  (1,000,000 tickets by `bench/generate.py`), then `GET /api/now/table/incident` with Basic auth
  (an approver account) in rotation: `like_person`, `opened_byLIKE<person>^ORDERBYDESCopened_at`
  for five people taken from tickets spread over the history, and `in_numbers`, `numberIN` ten
  ticket numbers, five sets. No `sysparm_fields` and no `sysparm_limit`, as pysnc reads records:
  the default fields (references with links, approval, active, the access window) of every match
  in one page (the records per answer are in the table). Each query is loaded by one client (the
  target: what a PAM product checking a ticket waits for) and by 16 connections, after a 1 s warm-up."""
