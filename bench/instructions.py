"""`python -m bench.instructions [--backend sqlite|postgresql] [--deliveries N]`: instructions per delivery.

Counts, with valgrind's callgrind, the machine instructions the broker's process executes for the
intake phase's deliveries (bench.profile's mix: a created event, then its update, alternating
Application Access and Admin Access) sent through its WSGI app in that process: a run of N
deliveries minus a run of none, both after the same start (the app, a warm-up of WARM_UP
deliveries), divided by N. A count of instructions moves far less than a time (valgrind runs the
code on a simulated CPU; the hash seed is fixed), but not nothing: valgrind slows the process some
fifty times, and time-based caches (the account cache's second, the configuration check) expire
more often when other work shares the cores. Two versions of the code run side by side on a quiet
host, each on its own core, compare to within a fraction of a per cent. It counts the broker's
process only: on PostgreSQL the
server's work is not in it (on SQLite the database engine runs in the process and is), nor is any
wait, so it compares changes to the broker's own code, not throughput; bench's intake phases
measure that. valgrind slows Python some fifty times: 200 deliveries take about two minutes.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import broker, inprocess, profile, servers

WARM_UP = 40
_COLLECTED = re.compile(r"Collected : (\d+)")


def deliver(database_url, deliveries):
    """Send WARM_UP then `deliveries` deliveries through the broker's app in this process; each must answer 200."""
    from app import create_app

    app = create_app({"database_url": database_url, "secret_key": broker.SECRET_KEY, "log_level": "WARNING"})
    environs = profile.delivery_environs()
    statuses = []
    for _ in range(WARM_UP + deliveries):
        inprocess._call(app, next(environs), statuses)
    if set(statuses) != {200}:
        raise SystemExit(f"deliveries answered {sorted(set(statuses))}, not only 200")


def count(database_url, deliveries):
    """Instructions valgrind's callgrind counts for a process that starts the app and sends `deliveries`."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
               "bench.instructions", "--deliver", database_url, str(deliveries)]
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    try:
        done = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], env=environment,
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)") from None
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found[1])


def measure(backend, deliveries):
    """(instructions per delivery, the runs' two totals) on a new database of `backend`."""
    with tempfile.TemporaryDirectory(prefix="jitbroker-instructions-") as folder, \
            servers.database_for(backend, folder, "instructions") as db:
        broker.prepare(db.url)
        start, run = count(db.url, 0), count(db.url, deliveries)
    return (run - start) // deliveries, (start, run)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--deliver", nargs=2, metavar=("DATABASE_URL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.deliver:
        deliver(args.deliver[0], int(args.deliver[1]))
        return 0
    per_delivery, (start, run) = measure(args.backend, args.deliveries)
    print(f"{per_delivery} instructions per delivery on {args.backend} ({args.deliveries} deliveries: {run} "
          f"instructions, none: {start})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
