"""Background jobs: their registry, and running one under its lock.

Jobs run in one `jitbroker scheduler` process per deployment (app/jobs/scheduler.py),
never inside gunicorn workers (each worker would run every job again), or once each
from cron with `jitbroker run-jobs`. Whoever starts a job takes its lock first
(app/jobs/lease.py), so a job never runs twice at once across processes.
"""
import logging
from dataclasses import dataclass
from typing import Callable

import peewee

from app.db import database
from app.jobs import lease

log = logging.getLogger(__name__)


def deliver_outbox():
    """Attempt every decision delivery that is due."""
    from app.decisions.delivery import deliver_due

    tried = deliver_due()
    if tried:
        log.info("outbox: %s decision deliveries attempted", tried)
    return tried


def send_notifications():
    """Send queued ticket notifications (e-mail, webhook) that are due."""
    from app.notify.service import send_due

    return send_due()


def queue_sla_reminders():
    """Queue one reminder for each ticket waiting longer than the configured SLA."""
    from app.notify.service import queue_sla_reminders

    return queue_sla_reminders()


def reconcile_with_epm():
    """Repair what missed webhooks left out, from EPM's request lists."""
    from app.jobs.reconcile import reconcile_job

    return reconcile_job()


def purge_expired():
    """Delete rows past their retention period, in small batches."""
    from app.jobs.retention import purge

    return purge()


def evaluate_policies():
    """Run policy evaluations left queued (normally they run right after the webhook's answer)."""
    from app.policies.queue import evaluate_due

    return evaluate_due()


@dataclass(frozen=True)
class Job:
    """A background job: what it runs, how often, and how long its lock lasts between renewals."""

    name: str
    function: Callable
    interval_seconds: int
    lock_seconds: int = 120


JOBS = {job.name: job for job in (
    Job("deliver_outbox", deliver_outbox, 5),
    Job("send_notifications", send_notifications, 15),
    Job("sla_reminders", queue_sla_reminders, 60),
    Job("reconcile", reconcile_with_epm, 15 * 60),
    Job("purge", purge_expired, 60 * 60),
    Job("evaluate_policies", evaluate_policies, 5),
)}


@dataclass
class JobOutcome:
    """What happened when a job was started: it ran (with a result or an error) or was skipped, and why."""

    name: str
    ran: bool
    result: object = None
    error: str | None = None
    skipped: str | None = None

    def __str__(self):
        if self.skipped:
            return f"skipped ({self.skipped})"
        if self.error:
            return f"failed: {self.error}"
        return str(self.result)


def run_job(job, holder, due_after_seconds=None):
    """Run `job` once if its lock can be taken (and, with `due_after_seconds`, if it is due).

    Runs inside the caller's app context, on a connection of its own; the lock is
    renewed while the job runs and released, with the outcome, when it ends.
    """
    with database.connection_context():
        try:
            taken = lease.acquire_job_lock(job.name, holder, job.lock_seconds, due_after_seconds)
        except peewee.PeeweeException as error:
            log.warning("job %s: could not take its lock: %s", job.name, error)
            return JobOutcome(job.name, ran=False, error=f"database unavailable: {error}")
        if not taken:
            reason = "running elsewhere or not due yet" if due_after_seconds is not None else "running elsewhere"
            return JobOutcome(job.name, ran=False, skipped=reason)
        result = error = None
        try:
            with lease.JobLockKeeper(job.name, holder, job.lock_seconds):
                result = job.function()
        except Exception as failure:  # noqa: BLE001 - one failing job must not stop the others
            log.exception("job %s failed", job.name)
            error = f"{failure.__class__.__name__}: {failure}"
            if database.in_transaction():
                database.rollback()
        try:
            lease.release_job_lock(job.name, holder, result=result, error=error)
        except peewee.PeeweeException:
            log.exception("job %s: could not release its lock; it expires in %s s", job.name, job.lock_seconds)
        return JobOutcome(job.name, ran=True, result=result, error=error)


def run_due_jobs(holder=None, force=False, names=None):
    """Run each job once, for cron: only those due (interval elapsed since anyone last started
    them) unless `force`; never one another process is running. Returns {name: JobOutcome}."""
    holder = holder or lease.new_holder_id("run-jobs")
    jobs = [JOBS[name] for name in names] if names else list(JOBS.values())
    return {job.name: run_job(job, holder, None if force else job.interval_seconds) for job in jobs}


def run_scheduler(app):
    """Block running the jobs on their intervals while this process holds the scheduler lease."""
    from app.jobs.scheduler import run_until_signalled

    run_until_signalled(app)
