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
