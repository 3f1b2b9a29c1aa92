"""The `jitbroker scheduler` process: APScheduler for the timing, a database lease for who may run.

Each process keeps its own in-memory APScheduler (its job stores must never be shared); the lease holder
runs the jobs, and work is claimed row by row (app/claims.py), so a process that lost its lease sends nothing twice."""
import logging
import time
from collections import deque
from datetime import datetime, timedelta, timezone

import peewee
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from app.claims import new_holder_id
from app.db import database
from app.jobs import lease
from app.jobs.registry import JOBS, run_job
from app.stopping import stop_on_signals

log = logging.getLogger(__name__)


# Database connections the scheduler process needs outside its jobs: the lease heartbeat and the log store.
RESERVED_CONNECTIONS = 2


class LeasedScheduler:
    """Runs `jobs` on their intervals while holding the scheduler lease; see the module docstring."""

    def __init__(self, app, jobs=None, holder=None, lease_seconds=lease.LEASE_SECONDS,
                 heartbeat_seconds=lease.HEARTBEAT_SECONDS):
        lease.check_lease_times(lease_seconds, heartbeat_seconds)
        self.app = app
        self.jobs = list(JOBS.values() if jobs is None else jobs)
        self.holder = holder or new_holder_id("scheduler")
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        # Until when (monotonic) this process may start jobs: the lease's length from
        # the moment before the renewal was sent, less one heartbeat of safety.
        self._active_until = 0.0
        self._scheduler = None
        self.outcomes = deque(maxlen=200)  # (job name, JobOutcome) of this process's latest runs
        # {job name: seconds}: a job run again sooner than its interval (registry.EPM_RETRY_SECONDS) is skipped only
        # if another process started it within half that wait.
        self._due_after = {}

    @property
    def is_active(self):
        return time.monotonic() < self._active_until

    def heartbeat(self):
        """Take or renew the lease; resume the jobs on winning it, pause them on losing it."""
        started = time.monotonic()
        was_active = self.is_active
        try:
            with self.app.app_context(), database.connection_context():
                held = lease.acquire_scheduler_lease(self.holder, self.lease_seconds)
        except peewee.PeeweeException as error:
            # Cannot tell: keep running until the lease we had runs out locally.
            log.warning("scheduler %s: could not renew its lease: %s", self.holder, error)
            return self.is_active
        if held:
            self._active_until = started + self.lease_seconds - self.heartbeat_seconds
            if not was_active:
                log.info("scheduler %s is now the active scheduler", self.holder)
                self._scheduler.resume()
        else:
            self._active_until = 0.0
            if was_active:
                log.warning("scheduler %s lost its lease to another process; standing by", self.holder)
            self._scheduler.pause()
        return held

    def _run(self, job):
        if not self.is_active:
            return
        with self.app.app_context():
            # Half an interval: APScheduler's own cadence always passes, while a job
            # another process (a previous active scheduler, cron) just ran is skipped.
            due_after = self._due_after.pop(job.name, job.interval_seconds / 2)
            outcome = run_job(job, due_after_seconds=due_after, scheduled=True)
        if outcome.run_again_in is not None:
            # After that wait, then on its interval from there.
            self._due_after[job.name] = outcome.run_again_in / 2
            try:
                self._scheduler.modify_job(job.name, next_run_time=datetime.now(timezone.utc)
                                           + timedelta(seconds=outcome.run_again_in))
            except JobLookupError:  # the scheduler stopped while the job ran: nothing left to bring forward
                pass
        self.outcomes.append((job.name, outcome))
        if outcome.ran and outcome.error is None and outcome.result:
            log.debug("job %s: %s", job.name, outcome)

    def _workers(self):
        """Threads for jobs: one per job, but never more than the database pool holds beside the heartbeat's and
        the log store's connections, so a busy minute queues a job instead of failing it for a connection."""
        pool = self.app.extensions["settings"].max_connections
        return max(1, min(len(self.jobs), pool - RESERVED_CONNECTIONS))

    def run(self, stop_event):
        """Block until `stop_event` is set; then let running jobs finish and release the lease."""
        self._scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(max_workers=self._workers())},
            # One instance of a job at a time; runs missed while paused or busy merge into one.
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        now = datetime.now(timezone.utc)
        for job in self.jobs:
            self._scheduler.add_job(self._run, "interval", seconds=job.interval_seconds, args=[job], id=job.name,
                                    name=job.name, next_run_time=now)
        self._scheduler.start(paused=True)
        log.info("scheduler %s started with jobs: %s", self.holder, ", ".join(job.name for job in self.jobs))
        try:
            while True:
                self.heartbeat()
                if stop_event.wait(self.heartbeat_seconds):
                    break
        finally:
            self._scheduler.shutdown(wait=True)
            if self._active_until:
                self._active_until = 0.0
                try:
                    with self.app.app_context(), database.connection_context():
                        lease.release_scheduler_lease(self.holder)
                except peewee.PeeweeException:
                    log.exception("scheduler %s: could not release its lease; it expires by itself", self.holder)
            log.info("scheduler %s stopped", self.holder)


def run_until_signalled(app):
    """Run a LeasedScheduler until SIGTERM or SIGINT (Ctrl-C)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=app.extensions["settings"].log_level,
                            format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = stop_on_signals(lambda signum: log.info("received signal %s; stopping after running jobs finish", signum))
    LeasedScheduler(app).run(stop)
