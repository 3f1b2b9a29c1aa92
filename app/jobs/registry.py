"""The background jobs, and running them under the scheduler lease: by the active scheduler, or once by `run-jobs`."""
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import peewee
from flask import current_app

from app.auth import sessions
from app.chat import outbox as chat
from app.claims import database_now, new_holder_id
from app.db import database, write_transaction
from app.decisions import delivery
from app.epm.errors import EpmError
from app.jobs import expiry, lease, reconcile, retention
from app.jobs.models import JobRun
from app.notify import alerts, service as notify
from app.policies import queue as policy_queue

log = logging.getLogger(__name__)

# A job whose run could not use EPM (down, or not listening yet: a scheduler started before it) runs again after
# the next of these waits while it is shorter than the job's interval, under the scheduler; a run that reaches EPM
# starts them over. Under cron (`run-jobs`) cron's own cadence decides.
EPM_RETRY_SECONDS = (60, 120, 240, 480)

# How much of a run's result and error is kept (`jitbroker jobs status`): a reconciliation's keeps its first problems.
KEPT_CHARACTERS = 8000


@dataclass(frozen=True)
class Job:
    """A background job: what it runs, and how often."""

    name: str
    function: Callable
    interval_seconds: int


JOBS = {job.name: job for job in (
    Job("deliver_outbox", delivery.deliver_due, 5),  # decisions due (or abandoned mid-send)
    Job("send_notifications", notify.send_due, 15),  # e-mail and chat webhook
    Job("send_chat", chat.send_due, 5),  # Slack messages kept up to date, Teams cards
    Job("sla_reminders", notify.queue_sla_reminders, 60),  # one per ticket waiting past the SLA
    Job("reconcile", reconcile.reconcile_job, 15 * 60),  # what missed webhooks left out
    Job("purge", retention.purge, 60 * 60),  # rows past their retention, in small batches
    Job("evaluate_policies", policy_queue.evaluate_due, 5),  # left queued after the webhook's answer
    Job("ops_alerts", alerts.check_alerts, 60),  # EPM refusing the credentials, no webhook for hours
    Job("expire_pending", expiry.expire_pending, 60),  # requests undecided past [tickets] expire_pending_hours
    Job("forget_ended_sessions", sessions.forget_ended_sessions, 60),  # records of timed-out sessions (tokens stay)
)}


@dataclass
class JobOutcome:
    """What happened when a job was started: it ran (with a result or an error) or was skipped, and why."""

    name: str
    ran: bool
    result: object = None
    error: str | None = None
    skipped: str | None = None
    # Seconds until the scheduler runs it again when that is sooner than its interval (EPM_RETRY_SECONDS).
    run_again_in: float | None = None

    def __str__(self):
        if self.skipped:
            return f"skipped ({self.skipped})"
        if self.error:
            return f"failed: {self.error}"
        return str(self.result)


class LeaseHeld(Exception):
    """Another process (an active scheduler) holds the scheduler lease; `state` is scheduler_lease()."""

    def __init__(self, state):
        super().__init__(state)
        self.state = state


def _start(name, due_after_seconds):
    """Record that job `name` starts now; False (nothing recorded) if it started less than
    `due_after_seconds` ago."""
    now = database_now()
    condition = JobRun.name == name
    if due_after_seconds is not None:
        condition &= (JobRun.last_started_at.is_null()
                      | (JobRun.last_started_at <= now - timedelta(seconds=due_after_seconds)))
    with write_transaction():
        JobRun.insert(name=name).on_conflict_ignore().execute()
        return JobRun.update(last_started_at=now, runs=JobRun.runs + 1).where(condition).execute() == 1


def run_job(job, due_after_seconds=None, scheduled=False):
    """Run `job` once (with `due_after_seconds`, only if nobody started it that recently) and record
    how it ended. The caller holds the scheduler lease; runs inside its app context, on a
    connection of its own. `scheduled`: the scheduler runs it, and runs it again sooner than its
    interval when the outcome's `run_again_in` says so."""
    with database.connection_context():
        try:
            if not _start(job.name, due_after_seconds):
                return JobOutcome(job.name, ran=False, skipped="ran less than an interval ago")
        except peewee.PeeweeException as error:
            log.warning("job %s: could not record its start: %s", job.name, error)
            return JobOutcome(job.name, ran=False, error=f"database unavailable: {error}")
        result = error = run_again_in = None
        # {job name: runs in a row} of this app's jobs whose last run could not use EPM: told once as a WARNING,
        # then at INFO until EPM answers again.
        epm_failing = current_app.extensions.setdefault("jobs_epm_failing", {})
        try:
            result = job.function()
            epm_failing.pop(job.name, None)
        except EpmError as failure:
            # EPM down or not reachable yet (a scheduler started before it): one line, no traceback.
            level = logging.INFO if job.name in epm_failing else logging.WARNING
            epm_failing[job.name] = failures = epm_failing.get(job.name, 0) + 1
            run_again_in = _sooner_after_epm_failed(job, failures) if scheduled else None
            log.log(level, "job %s could not use EPM; it runs again in %s s: %s", job.name,
                    run_again_in or job.interval_seconds, failure)
            error = f"{failure.__class__.__name__}: {failure}"
            if database.in_transaction():
                database.rollback()
        except Exception as failure:  # noqa: BLE001 - one failing job must not stop the others
            log.exception("job %s failed", job.name)
            error = f"{failure.__class__.__name__}: {failure}"
            if database.in_transaction():
                database.rollback()
        try:
            with write_transaction():
                (JobRun.update(last_finished_at=database_now(),
                               last_result=None if result is None else str(result)[:KEPT_CHARACTERS],
                               last_error=None if error is None else error[:KEPT_CHARACTERS])
                 .where(JobRun.name == job.name).execute())
        except peewee.PeeweeException:
            log.exception("job %s: could not record how its run ended", job.name)
        return JobOutcome(job.name, ran=True, result=result, error=error, run_again_in=run_again_in)


def _sooner_after_epm_failed(job, failures):
    """The wait before `job` runs again after its `failures`-th run in a row that could not use EPM, or None
    when it is no shorter than its interval."""
    if failures > len(EPM_RETRY_SECONDS) or EPM_RETRY_SECONDS[failures - 1] >= job.interval_seconds:
        return None
    return EPM_RETRY_SECONDS[failures - 1]


def run_due_jobs(force=False, names=None):
    """Run each job once, for cron, holding the scheduler lease meanwhile: only those due (interval
    elapsed since anyone last started them) unless `force`. Returns {name: JobOutcome}; raises
    LeaseHeld while another process (an active scheduler) holds the lease."""
    holder = new_holder_id("run-jobs")
    with database.connection_context():
        if not lease.acquire_scheduler_lease(holder, lease.LEASE_SECONDS):
            raise LeaseHeld(lease.scheduler_lease())
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_lease, args=(current_app._get_current_object(), holder, stop),
                              name="run-jobs-lease", daemon=True)
    keeper.start()
    try:
        jobs = [JOBS[name] for name in names] if names else list(JOBS.values())
        return {job.name: run_job(job, None if force else job.interval_seconds) for job in jobs}
    finally:
        stop.set()
        keeper.join()
        with database.connection_context():
            lease.release_scheduler_lease(holder)


def _keep_lease(app, holder, stop):
    # A long job (a purge, a reconciliation) must not outlive the lease: renew it every heartbeat.
    while not stop.wait(lease.HEARTBEAT_SECONDS):
        try:
            with app.app_context(), database.connection_context():
                lease.acquire_scheduler_lease(holder, lease.LEASE_SECONDS)
        except peewee.PeeweeException:
            log.exception("run-jobs: could not renew the scheduler lease")
