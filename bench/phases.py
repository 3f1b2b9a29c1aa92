"""The benchmark's phases: each starts its own processes and databases, loads them, and returns numbers."""
import sys
from dataclasses import dataclass
from functools import partial

from bench import broker, cluster, decisions, intake, listing, servers, wrk

WARM_UP_SECONDS = 2


@dataclass
class Options:
    seconds: int
    small: int
    large: int
    quick: bool
    scratch: str = ""


def roof(options):
    """A no-op Flask JSON endpoint under the broker's gunicorn settings."""
    with servers.Gunicorn("bench.roof:create_app()") as server:
        wrk.run(server.url, "post_json.lua", WARM_UP_SECONDS)
        result = wrk.run(server.url, "post_json.lua", options.seconds)
        result["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return result


ROUNDS = 3


def _deliveries(server, seconds):
    """wrk's result for `seconds` of deliveries on `server`, with the CPU each delivery cost: its gunicorn
    workers', the PostgreSQL server's (every `postgres` process: nothing else loads it meanwhile), and how
    busy the host was."""
    workers, host = server.worker_pids(), servers.host_busy_seconds()
    before, database = servers.cpu_seconds(workers), servers.cpu_seconds(name="postgres")
    result = intake.load(server.url, broker.API_USER, broker.PASSWORD, seconds)
    deliveries = max(result["requests"], 1)
    host_after = servers.host_busy_seconds()
    result["cpu_ms_per_delivery"] = {
        "workers": round(1000 * servers.cpu_used_since(before, servers.cpu_seconds(workers)) / deliveries, 3),
        "postgres": round(1000 * servers.cpu_used_since(database, servers.cpu_seconds(name="postgres"))
                          / deliveries, 3),
    }
    result["host_busy_share"] = round((host_after[1] - host[1]) / max(host_after[0] - host[0], 1e-9), 2)
    return result


def _median_run(runs):
    """One result for several runs of the same load: the median run by throughput, the counts summed."""
    middle = sorted(runs, key=lambda run: run["requests_per_second"])[len(runs) // 2]
    result = dict(middle)
    for name in ("requests", "ok", "non_2xx", "database_locked"):
        result[name] = sum(run[name] for run in runs)
    result["socket_errors"] = {name: sum(run["socket_errors"].get(name, 0) for run in runs)
                               for name in middle["socket_errors"]}
    result["statuses"] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            result["statuses"][status] = result["statuses"].get(status, 0) + count
    result["rounds"] = [{"requests_per_second": run["requests_per_second"], "p99_ms": run["latency_ms"]["p99"],
                         **{name: run[name] for name in ("cpu_ms_per_delivery", "host_busy_share") if name in run}}
                        for run in runs]
    return result


def _intake(backend, options):
    """The webhook on the default path against the durable write reference (bench/reference.py), in one run.

    Both servers run side by side on databases of their own; their loads alternate over ROUNDS rounds
    (reference, intake, reference, ...), so a change in what else the machine runs touches both alike.
    The broker runs as shipped: each delivery becomes its ticket before its 2xx, with SQLite's
    `synchronous = FULL` (PostgreSQL: synchronous_commit on), and the scheduler beside it."""
    from bench import reference

    with servers.database_for(backend, options.scratch, "intake") as db, \
            servers.database_for(backend, options.scratch, "reference") as reference_db:
        broker.prepare(db.url)
        reference.prepare(reference_db.url)
        env = broker.server_env(db.url)
        with servers.Gunicorn("app:create_app()", env=env) as server, \
                servers.Gunicorn("bench.reference:create_app()",
                                 env={"REFERENCE_DATABASE_URL": reference_db.url}) as reference_server, \
                servers.Process([sys.executable, "-m", "flask", "--app", "app:create_app()", "scheduler"], env=env):
            warm = _deliveries(server, WARM_UP_SECONDS)
            _deliveries(reference_server, WARM_UP_SECONDS)
            reference_runs, intake_runs = [], []
            for _ in range(ROUNDS):
                reference_runs.append(_deliveries(reference_server, options.seconds))
                intake_runs.append(_deliveries(server, options.seconds))
            result = _median_run(intake_runs)
            result["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
            result["reference"] = _median_run(reference_runs)
            result["reference"]["worker_peak_rss_mb"] = reference_server.worker_peak_rss_mb()
        with broker.broker_app(db.url):
            rows = intake.stored_rows()
    answered_2xx = warm["ok"] + result["ok"]
    rows["answered_2xx_including_warm_up"] = answered_2xx
    # Every 2xx stored its delivery; rows beyond them are requests wrk had in flight when it stopped.
    rows["every_2xx_stored"] = rows["incoming_requests"] >= answered_2xx and warm["non_2xx"] == 0
    result["rows"] = rows
    result["backend"] = backend
    result["sqlite_synchronous"] = "FULL" if backend == "sqlite" else None
    result.update(ratios_to_reference(result))
    return result


def ratios_to_reference(result):
    """The intake's throughput and p99 as ratios of the reference's: each round's intake over the reference run
    just before it, and the median of the rounds (a change in the machine's load touches a pair alike)."""
    pairs = list(zip(result["rounds"], result["reference"]["rounds"]))
    throughput = sorted(mine["requests_per_second"] / theirs["requests_per_second"] for mine, theirs in pairs)
    p99 = sorted(mine["p99_ms"] / theirs["p99_ms"] for mine, theirs in pairs)
    return {"ratio_to_reference": round(throughput[len(pairs) // 2], 2),
            "p99_to_reference": round(p99[len(pairs) // 2], 2),
            "ratios_by_round": [round(ratio, 2) for ratio in throughput]}


def _lists(backend, options):
    return listing.measure(backend, options.small, options.large, options)


def _table_api(backend, options):
    """The ServiceNow Table API's LIKE and IN lookups over the large history (bench/table_api.py)."""
    from bench import table_api

    return table_api.measure(backend, options.large, options)


def decision_round_trip(options):
    """Approvals through the JSON API on SQLite (the default store), delivered to the fake EPM."""
    with servers.database_for("sqlite", options.scratch, "decisions") as db:
        broker.prepare(db.url)
        with servers.Gunicorn("app:create_app()", env=broker.server_env(db.url)) as server:
            with broker.broker_app(db.url):
                result = decisions.round_trips(server, 30 if options.quick else 200)
            result["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return result


def two_instances(options):
    return cluster.run(options)


def profile(options):
    """Where one delivery's time goes, by part, under cProfile in this process (bench/profile.py), per database."""
    from bench import profile as measurement

    deliveries = 300 if options.quick else 2000
    results = {"deliveries": deliveries}
    for backend in ("sqlite", "postgresql"):
        with servers.database_for(backend, options.scratch, "profile") as db:
            parts, total, statuses, _stats, collections = measurement.profile(db.url, deliveries)
        results[backend] = {"ms_per_delivery": round(total, 2), "statuses": statuses,
                            "parts_ms": {part: round(ms, 2) for part, ms in parts.items()},
                            "garbage_collection": collections}
    return results


def inprocess(options):
    """CPU per request without a server: the roof, /healthz, a delivery, the first list pages."""
    from bench import inprocess as measurement

    return measurement.measure(500 if options.quick else 3000, options.scratch)


# The phases in the order a whole run takes them; `--phase` names them.
RUNNERS = {
    "inprocess": inprocess,
    "profile": profile,
    "roof": roof,
    "intake_sqlite": partial(_intake, "sqlite"),
    "intake_postgresql": partial(_intake, "postgresql"),
    "decision_round_trip": decision_round_trip,
    "two_instances": two_instances,
    "lists_sqlite": partial(_lists, "sqlite"),
    "lists_postgresql": partial(_lists, "postgresql"),
    "table_api_sqlite": partial(_table_api, "sqlite"),
    "table_api_postgresql": partial(_table_api, "postgresql"),
}
ORDER = list(RUNNERS)
