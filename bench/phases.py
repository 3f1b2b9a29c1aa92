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


def _deliveries(server, options):
    """The intake load on `server`: wrk's results for the warm-up and the measured run (with the worker's RSS)."""
    warm = intake.load(server.url, broker.API_USER, broker.PASSWORD, WARM_UP_SECONDS)
    result = intake.load(server.url, broker.API_USER, broker.PASSWORD, options.seconds)
    result["worker_peak_rss_mb"] = server.worker_peak_rss_mb()
    return warm, result


def _intake(backend, options):
    """The webhook under load on the default path: each delivery becomes its ticket before its 2xx,
    with SQLite's shipped `synchronous = FULL` (PostgreSQL: synchronous_commit on), and the
    scheduler running beside it as a deployment runs it."""
    with servers.database_for(backend, options.scratch, "intake") as db:
        broker.prepare(db.url)
        env = broker.server_env(db.url)
        with servers.Gunicorn("app:create_app()", env=env) as server, \
                servers.Process([sys.executable, "-m", "flask", "--app", "app:create_app()", "scheduler"], env=env):
            warm, result = _deliveries(server, options)
        with broker.broker_app(db.url):
            rows = intake.stored_rows()
    answered_2xx = warm["ok"] + result["ok"]
    rows["answered_2xx_including_warm_up"] = answered_2xx
    # Every 2xx stored its delivery; rows beyond them are requests wrk had in flight when it stopped.
    rows["every_2xx_stored"] = rows["incoming_requests"] >= answered_2xx and warm["non_2xx"] == 0
    result["rows"] = rows
    result["backend"] = backend
    result["sqlite_synchronous"] = "FULL" if backend == "sqlite" else None
    return result


def _reference(backend, options, synchronous="FULL"):
    """bench/reference.py (one INSERT of the body, nothing else) loaded with the intake phase's deliveries."""
    from bench import reference

    with servers.database_for(backend, options.scratch, "reference") as db:
        reference.prepare(db.url)
        env = {"REFERENCE_DATABASE_URL": db.url, "REFERENCE_SYNCHRONOUS": synchronous}
        with servers.Gunicorn("bench.reference:create_app()", env=env) as server:
            _warm, result = _deliveries(server, options)
    result["backend"] = backend
    result["sqlite_synchronous"] = synchronous if backend == "sqlite" else None
    return result





def _lists(backend, options):
    return {"small": listing.measure(backend, options.small, options),
            "large": listing.measure(backend, options.large, options)}




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


def inprocess(options):
    """CPU per request without a server: the roof, /healthz, a delivery, the first list pages."""
    from bench import inprocess as measurement

    return measurement.measure(500 if options.quick else 3000, options.scratch)


# The phases in the order a whole run takes them; `--phase` names them.
RUNNERS = {
    "inprocess": inprocess,
    "roof": roof,
    "reference_sqlite": partial(_reference, "sqlite"),
    "reference_sqlite_normal": partial(_reference, "sqlite", synchronous="NORMAL"),
    "reference_postgresql": partial(_reference, "postgresql"),
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
