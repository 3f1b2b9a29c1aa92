"""Several schedulers against one PostgreSQL database: one runs the jobs, a standby takes over when it dies."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from app.db import database
from app.jobs import lease
from app.jobs.models import JobRun
from app.jobs.registry import JOBS, Job
from app.jobs.scheduler import LeasedScheduler
from tests.live import ROOT
from tests.waiting import wait_until

RUNS_TABLE = "test_job_runs"

# A scheduler in a process of its own, running one job that records each run.
SCHEDULER_PROCESS = """
import sys, threading
from app import create_app
from app.db import database
from app.jobs.registry import Job
from app.jobs.scheduler import LeasedScheduler

def record_run():
    database.execute_sql("INSERT INTO test_job_runs (holder) VALUES (%s)", (sys.argv[1],))
    return "recorded"

app = create_app({"database_url": sys.argv[2], "secret_key": "test-secret-key"})
stop = threading.Event()
import signal
signal.signal(signal.SIGTERM, lambda *_: stop.set())
LeasedScheduler(app, jobs=[Job("record", record_run, 1)], holder=sys.argv[1], lease_seconds=3,
                heartbeat_seconds=1).run(stop)
"""


@pytest.fixture
def runs_table(pg_app):
    with database.connection_context():
        database.execute_sql(f"CREATE TABLE IF NOT EXISTS {RUNS_TABLE} (holder text, ran_at timestamp DEFAULT now())")
        database.execute_sql(f"TRUNCATE {RUNS_TABLE}")
    return RUNS_TABLE


def runs():
    with database.connection_context():
        return [row[0] for row in database.execute_sql(f"SELECT holder FROM {RUNS_TABLE} ORDER BY ran_at")]


def record_job(holder, interval=3600):
    def record_run():
        database.execute_sql(f"INSERT INTO {RUNS_TABLE} (holder) VALUES (%s)", (holder,))
        return "recorded"
    return Job("record", record_run, interval)


class Running:
    """A LeasedScheduler running in a thread until stopped."""

    def __init__(self, app, holder, jobs=None, lease_seconds=30, heartbeat_seconds=1):
        self.holder = holder
        self.scheduler = LeasedScheduler(app, jobs=jobs if jobs is not None else [record_job(holder)], holder=holder,
                                         lease_seconds=lease_seconds, heartbeat_seconds=heartbeat_seconds)
        self.heartbeats = []  # True or False for each lease renewal tried: held or not
        heartbeat = self.scheduler.heartbeat
        self.scheduler.heartbeat = lambda: self.heartbeats.append(heartbeat()) or self.heartbeats[-1]
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(app,), daemon=True)

    def _run(self, app):
        with app.app_context():
            self.scheduler.run(self.stop_event)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        self.thread.join(30)
        assert not self.thread.is_alive()

    def heartbeated(self, times, after=0):
        """Wait until this scheduler has tried to take or renew the lease `times` more times than `after`."""
        wait_until(lambda: len(self.heartbeats) >= after + times, timeout=15 + 2 * times,
                   message=f"{self.holder} to heartbeat {times} more times")


def current_holder():
    with database.connection_context():
        state = lease.scheduler_lease()
    return None if state is None or state["expired"] else state["holder"]


def test_two_schedulers_run_a_job_once_and_only_the_lease_holder_runs_it(pg_app, runs_table):
    first, second = Running(pg_app, "host-a:1"), Running(pg_app, "host-b:2")
    first.start(), second.start()
    try:
        wait_until(lambda: len(runs()) >= 1, message="the job to run")
        # Both schedulers fired the job at start (the standby's paused) and have heartbeated since.
        for running in (first, second):
            running.heartbeated(2, after=len(running.heartbeats))
    finally:
        first.stop(), second.stop()
    assert len(runs()) == 1
    active = [running for running in (first, second) if running.scheduler.outcomes]
    assert len(active) == 1
    assert runs() == [active[0].holder]


def test_two_schedulers_run_each_real_job_once(pg_app):
    first, second = Running(pg_app, "host-a:1", jobs=list(JOBS.values())), Running(pg_app, "host-b:2",
                                                                                   jobs=list(JOBS.values()))
    first.start(), second.start()
    try:
        wait_until(lambda: JobRun.select().where(JobRun.last_finished_at.is_null(False)).count() == len(JOBS),
                   message="every job to finish once")
        for running in (first, second):  # time for either to run a job again, were it to
            running.heartbeated(2, after=len(running.heartbeats))
    finally:
        first.stop(), second.stop()
    rows = {row.name: row for row in JobRun.select()}
    assert set(rows) == set(JOBS)
    assert all(row.runs == 1 for row in rows.values()), {name: row.runs for name, row in rows.items()}
    ran = {holder for holder, running in (("host-a:1", first), ("host-b:2", second)) if running.scheduler.outcomes}
    assert len(ran) == 1


def _start_process(postgres_url, holder):
    return subprocess.Popen([sys.executable, "-c", SCHEDULER_PROCESS, holder, postgres_url], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _stderr_of(process):
    """What `process` wrote to stderr, for a failure message. It is killed first: reading the pipe of a process
    that still runs waits for it to end, which a scheduler never does by itself."""
    if process.poll() is None:
        process.kill()
    return process.communicate(timeout=10)[1]


@pytest.fixture
def scheduler_process(postgres_url, runs_table):
    process = _start_process(postgres_url, "host-a:1")
    yield process
    if process.poll() is None:
        process.kill()
    process.wait(10)
    process.stderr.close()


def test_a_standby_takes_over_once_the_active_scheduler_died(pg_app, scheduler_process):
    # Both run a job every second: the standby's runs show when it took over.
    wait_until(lambda: "host-a:1" in runs(), timeout=30, message=lambda: _stderr_of(scheduler_process))
    standby = Running(pg_app, "host-b:2", jobs=[record_job("host-b:2", interval=1)], lease_seconds=3,
                      heartbeat_seconds=1).start()
    try:
        standby.heartbeated(3)
        assert standby.heartbeats == [False] * len(standby.heartbeats)
        assert not standby.scheduler.is_active and set(runs()) == {"host-a:1"}, "the standby waits"

        scheduler_process.send_signal(signal.SIGKILL)
        died_at = time.monotonic()
        wait_until(lambda: "host-b:2" in runs(), timeout=15, message="the standby to take over")
        took = time.monotonic() - died_at
    finally:
        standby.stop()
    assert 1 < took < 3 + 2 + 1, "not before the lease ran out; within it and a heartbeat or two after"
    history = runs()
    first_b = history.index("host-b:2")
    assert set(history[:first_b]) == {"host-a:1"} and set(history[first_b:]) == {"host-b:2"}, "never both at once"
    assert current_holder() is None, "the standby released the lease when it stopped"


def test_a_scheduler_that_stops_cleanly_hands_over_at_once(pg_app, scheduler_process):
    wait_until(lambda: "host-a:1" in runs(), timeout=30, message=lambda: _stderr_of(scheduler_process))
    standby = Running(pg_app, "host-b:2", jobs=[record_job("host-b:2", interval=1)], lease_seconds=30,
                      heartbeat_seconds=1).start()
    try:
        standby.heartbeated(1)
        assert standby.heartbeats[0] is False, "the standby found the lease held"
        scheduler_process.send_signal(signal.SIGTERM)
        assert scheduler_process.wait(15) == 0
        # A 30 s lease: taking over within a few seconds means it was released, not left to expire.
        wait_until(lambda: "host-b:2" in runs(), timeout=5, message="the standby to take over within seconds")
    finally:
        standby.stop()


def test_job_threads_leave_the_heartbeat_and_the_log_store_their_database_connections(app):
    pool = app.extensions["settings"].max_connections
    every_job = LeasedScheduler(app)
    assert len(every_job.jobs) >= pool - 2, "the registry outgrew the pool: this test would not tell"
    assert every_job._workers() == pool - 2
    assert LeasedScheduler(app, jobs=list(every_job.jobs)[:2])._workers() == 2
