"""`python -m bench.profile [--backend sqlite|postgresql] [--deliveries N]`: where one delivery's time goes.

Runs N deliveries (the intake phase's mix: a created event, then its update, alternating
Application Access and Admin Access) through the broker's WSGI app in this process under
cProfile, and splits the wall time of one delivery into the parts a reader can act on:
HTTP Basic (auth), JSON parsing, validation (marshmallow), building SQL text (peewee),
the database executing statements, the commit (where the durable write waits for the disk),
and the rest (Flask, the answer, the request log). Each part is the cumulative time of the
functions that do it, so the parts do not overlap.
"""
import argparse
import base64
import cProfile
import gc
import json
import pstats
import sys
import tempfile
import time
import uuid

import peewee

from app import contract
from app.auth import basic
from app.db import BrokerPostgresqlDatabase
from app.intake import schemas
from bench import broker, inprocess, intake, servers

# (part, [functions]): the functions whose cumulative time is the part.
CALLED = (
    ("auth (HTTP Basic, the account cache)", [basic.basic_account]),
    ("parse (JSON)", [schemas.parse_json_object]),
    ("validate (marshmallow)", [schemas.load_event]),
    ("BEGIN and COMMIT (the durable write waits in COMMIT)",
     [peewee.Database.begin, peewee.SqliteDatabase.begin, BrokerPostgresqlDatabase.begin, peewee.Database.commit,
      BrokerPostgresqlDatabase.commit]),
    # PostgreSQL: the statements held for the next round trip go with it, a COMMIT's with the COMMIT (app/db.py).
    ("SQL statements executed (the database's work and the round trips)",
     [peewee.Database.execute_sql, BrokerPostgresqlDatabase.execute_sql]),
)
SQL_BUILT = "SQL text built by peewee"
REST = "the rest: Flask, the service's own code (rendering rows), the answer, the request log"


def _bodies():
    """The intake phase's deliveries, in its order, each pair with a new RequestId."""
    documents = [(intake.FIXTURES / f"{name}.json").read_text() for name in intake.FIXTURE_ORDER]
    templates = []
    for text in documents:
        document = json.loads(text)
        document["RequestId"] = "@@"
        templates.append(json.dumps(document).split("@@"))
    while True:
        for pair in (templates[0:2], templates[2:4]):
            request_id = str(uuid.uuid4())
            for prefix, suffix in pair:
                yield (prefix + request_id + suffix).encode()


def delivery_environs():
    """WSGI environs of the intake phase's deliveries (`_bodies`), each with the bench's api account's HTTP Basic."""
    token = base64.b64encode(f"{broker.API_USER}:{broker.PASSWORD}".encode()).decode()
    for body in _bodies():
        yield inprocess._environ(contract.WEBHOOK_PATH, "POST", body, {"HTTP_AUTHORIZATION": f"Basic {token}"})


def _key(function):
    """pstats' key of a Python function: (file, first line, name)."""
    code = function.__code__
    return code.co_filename, code.co_firstlineno, code.co_name


def _cumulative(stats, function):
    """Cumulative seconds spent in `function` (0 when it never ran)."""
    row = stats.stats.get(_key(function))
    return row[3] if row else 0.0


def _sql_built(stats):
    """Seconds peewee's Database.execute spent outside execute_sql: turning a query into SQL text."""
    execute, from_execute = _key(peewee.Database.execute), 0.0
    for function in (peewee.Database.execute_sql, BrokerPostgresqlDatabase.execute_sql):
        execute_sql = stats.stats.get(_key(function))
        from_execute += execute_sql[4].get(execute, (0, 0, 0, 0))[3] if execute_sql else 0.0
    return _cumulative(stats, peewee.Database.execute) - from_execute


def profile(database_url, deliveries):
    """Run `deliveries` deliveries under cProfile; returns (ms per delivery by part, total ms, statuses)."""
    from app import create_app

    broker.prepare(database_url)
    app = create_app({"database_url": database_url, "secret_key": broker.SECRET_KEY, "log_level": "WARNING"})
    servers.gunicorn_hooks()["post_worker_init"](None)  # as a worker does once its app is loaded
    environs = delivery_environs()

    statuses = []
    for _ in range(50):  # warm: imports, the first password check, the caches
        inprocess._call(app, next(environs), statuses)
    collections = _Collections()
    profiler = cProfile.Profile()
    started = time.perf_counter()
    with collections:
        profiler.enable()
        for _ in range(deliveries):
            inprocess._call(app, next(environs), statuses)
        profiler.disable()
    collected = collections.summary(deliveries)  # before pstats' own objects join the collector's reach
    gc.unfreeze()  # the next backend's run freezes its own app's objects, not this one's
    total = (time.perf_counter() - started) / deliveries * 1000
    stats = pstats.Stats(profiler)
    parts = {part: sum(_cumulative(stats, function) for function in functions) / deliveries * 1000
             for part, functions in CALLED}
    parts[SQL_BUILT] = _sql_built(stats) / deliveries * 1000
    parts[REST] = max(0.0, total - sum(parts.values()))
    return parts, total, sorted(set(statuses)), stats, collected


class _Collections:
    """The garbage collector's runs while in use (gc.callbacks): how many of each generation, how long in all and
    the longest. A collection runs inside whatever allocated last, so its time is inside the parts, not one of
    them; the longest is how long one request, and every request queued behind it at the worker, waited on it."""

    def __init__(self):
        self.runs, self.seconds, self.longest, self._started = {}, 0.0, 0.0, None

    def _note(self, phase, info):
        if phase == "start":
            self._started = time.perf_counter()
            return
        spent = time.perf_counter() - self._started
        generation = info["generation"]
        self.runs[generation] = self.runs.get(generation, 0) + 1
        self.seconds += spent
        self.longest = max(self.longest, spent)

    def __enter__(self):
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self._note)

    def summary(self, deliveries):
        return {"runs_by_generation": {str(generation): runs for generation, runs in sorted(self.runs.items())},
                "ms_per_delivery": round(self.seconds / deliveries * 1000, 3),
                "longest_ms": round(self.longest * 1000, 2),
                "tracked_objects": len(gc.get_objects())}


def markdown(measured):
    """The performance page's section on where one delivery's time goes, from the `profile` phase's results."""
    backends = [backend for backend in ("sqlite", "postgresql") if backend in measured]
    lines = ["", "## Where one delivery's time goes", "",
             f"`python -m bench.profile --backend sqlite --deliveries {measured['deliveries']}` (and `--backend "
             "postgresql`; the `profile` phase of `scripts/bench` runs both): the intake phase's deliveries through "
             "the broker's WSGI app in one process under cProfile, one after another, each part the cumulative "
             "time of the functions doing it. cProfile slows Python code (auth, parsing, building SQL) more "
             "than waits (the commit), so the shares are a guide to where to look, not a budget. On PostgreSQL "
             "the statements that go with the COMMIT in its round trip (app/db.py) count in BEGIN and COMMIT.", "",
             "| part | " + " | ".join(f"{backend} ms | share" for backend in backends) + " |",
             "|---|" + "---|---|" * len(backends)]
    for part in measured[backends[0]]["parts_ms"]:
        cells = []
        for backend in backends:
            ms, total = measured[backend]["parts_ms"][part], measured[backend]["ms_per_delivery"]
            cells += [ms, f"{ms / total:.0%}"]
        lines.append(_markdown_row(part, *cells))
    totals = [cell for backend in backends for cell in (measured[backend]["ms_per_delivery"], "100%")]
    lines.append(_markdown_row("one delivery", *totals))
    collected = [backend for backend in backends if measured[backend].get("garbage_collection")]
    if collected:
        lines += ["", "The garbage collector during those deliveries (its time is inside the parts above; the longest "
                  "run is how long a request, and every request queued behind it at the worker, waited on it):", ""]
        for backend in collected:
            runs = measured[backend]["garbage_collection"]
            by_generation = ", ".join(f"{count} of generation {generation}"
                                      for generation, count in runs["runs_by_generation"].items()) or "none"
            lines.append(f"- {backend}: {by_generation}; {runs['ms_per_delivery']} ms per delivery, the longest "
                         f"{runs['longest_ms']} ms; {runs['tracked_objects']} objects left in its reach.")
    return lines


def _markdown_row(*cells):
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--top", type=int, default=0, help="also print the N functions with the most own time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="jitbroker-profile-") as folder, \
            servers.database_for(args.backend, folder, "profile") as db:
        parts, total, statuses, stats, collections = profile(db.url, args.deliveries)
    print(f"{args.deliveries} deliveries on {args.backend}, statuses {statuses}: {total:.2f} ms per delivery "
          "(wall time under cProfile, which slows Python code more than waits)")
    print(f"garbage collection: {collections}")
    print("| part | ms per delivery | share |")
    print("|---|---|---|")
    for part, ms in parts.items():
        print(f"| {part} | {ms:.2f} | {ms / total:.0%} |")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
