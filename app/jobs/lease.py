"""Database leases that keep background work single across processes and hosts.

The scheduler lease decides which `jitbroker scheduler` process is active: it is
taken and renewed with one conditional UPDATE in a short transaction, and a standby
takes it over only once the active process stopped renewing it (it died, or hung
longer than the lease). Per-job locks (the same kind of conditional UPDATE on a row
per job) make sure one job never runs twice at once, whoever starts it: the active
scheduler, a scheduler that lost its lease mid-run, or `jitbroker run-jobs` from cron.

Times come from the database's clock on PostgreSQL, so hosts with skewed clocks
still agree on when a lease runs out; SQLite serves one host and uses its clock.
"""
import logging
import os
import socket
import threading
import uuid
from datetime import timedelta

import peewee

from app.db import database, is_sqlite, write_transaction
from app.jobs.models import JobLock, SchedulerLease
from app.models import utcnow

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"


def _seconds_from_environment(variable, default):
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{variable} must be a whole number of seconds (1 or more), not {value!r}")
    return int(value)


# The active scheduler renews every HEARTBEAT_SECONDS; a standby takes over once the
# lease has not been renewed for LEASE_SECONDS. Shorter times hand over faster after a
# crash but renew more often; the environment can set both.
HEARTBEAT_SECONDS = _seconds_from_environment("JITBROKER_SCHEDULER_HEARTBEAT_SECONDS", 10)
LEASE_SECONDS = _seconds_from_environment("JITBROKER_SCHEDULER_LEASE_SECONDS", 30)
# When set, every job's lock lasts this long between renewals instead of the job's own
# lock_seconds: how soon another process may run a job whose runner died mid-run.
JOB_LOCK_SECONDS = _seconds_from_environment("JITBROKER_JOB_LOCK_SECONDS", None)
# /readyz: a heartbeat older than this means no scheduler is running jobs.
STALE_AFTER_SECONDS = LEASE_SECONDS


def new_holder_id(role="scheduler"):
    """A name for this process that is unique across hosts and restarts: host:pid:role:random."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{role}:{uuid.uuid4().hex[:8]}"


def database_now():
    """The current UTC time (naive) by the database's clock on PostgreSQL, this host's on SQLite."""
    if is_sqlite():
        return utcnow()
    return database.execute_sql("SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS timestamp)").fetchone()[0]


# --- The scheduler lease ---------------------------------------------------------------------

def acquire_scheduler_lease(holder, lease_seconds=LEASE_SECONDS):
    """Take or renew the scheduler lease for `holder`; True if it holds the lease now.

    Succeeds when `holder` already holds it, nobody does, or the holder let it
    expire. On PostgreSQL a concurrent UPDATE waits for the row lock and then
    re-checks the condition, so exactly one of two contenders wins.
    """
    now = database_now()
    lease = SchedulerLease
    with write_transaction():
        lease.insert(name=SCHEDULER_LEASE).on_conflict_ignore().execute()
        renewed = (lease
                   .update(holder=holder, heartbeat_at=now, expires_at=now + timedelta(seconds=lease_seconds),
                           acquired_at=peewee.Case(None, [(lease.holder == holder, lease.acquired_at)], now))
                   .where(lease.name == SCHEDULER_LEASE,
                          (lease.holder == holder) | lease.holder.is_null() | (lease.expires_at < now))
                   .execute())
    return renewed == 1


def release_scheduler_lease(holder):
    """Give the lease up at once (a clean shutdown), so a standby need not wait for it to expire."""
    with write_transaction():
        released = (SchedulerLease.update(holder=None, expires_at=database_now())
                    .where(SchedulerLease.name == SCHEDULER_LEASE, SchedulerLease.holder == holder).execute())
    return released == 1


def scheduler_lease():
    """The lease row as a dict (holder, acquired_at, heartbeat_at, expires_at, heartbeat_age_seconds,
    expired), or None when no scheduler ever ran."""
    row = SchedulerLease.get_or_none(SchedulerLease.name == SCHEDULER_LEASE)
    if row is None or row.heartbeat_at is None:
        return None
    now = database_now()
    return {
        "holder": row.holder,
        "acquired_at": row.acquired_at,
        "heartbeat_at": row.heartbeat_at,
        "expires_at": row.expires_at,
        "heartbeat_age_seconds": max(0.0, (now - row.heartbeat_at).total_seconds()),
        "expired": row.holder is None or row.expires_at is None or row.expires_at < now,
    }


def heartbeat_age_seconds():
    """Seconds since the active scheduler last renewed its lease, or None if none ever ran.

    For readiness checks: above STALE_AFTER_SECONDS no scheduler is running jobs
    (retries, notifications, reconciliation, purges).
    """
    lease = scheduler_lease()
    return None if lease is None else lease["heartbeat_age_seconds"]


# --- Per-job locks -----------------------------------------------------------------------

def acquire_job_lock(name, holder, lock_seconds, due_after_seconds=None):
    """Take job `name`'s lock for `lock_seconds`; True if taken.

    Refused while another holder's lock is unexpired. With `due_after_seconds`, also
    refused unless the job last started at least that long ago (by anyone): how
    `run-jobs` from cron skips jobs that ran recently.
    """
    lock_seconds = JOB_LOCK_SECONDS or lock_seconds
    now = database_now()
    condition = (JobLock.name == name) & (JobLock.holder.is_null() | (JobLock.locked_until < now))
    if due_after_seconds is not None:
        condition &= (JobLock.last_started_at.is_null()
                      | (JobLock.last_started_at <= now - timedelta(seconds=due_after_seconds)))
    with write_transaction():
        JobLock.insert(name=name).on_conflict_ignore().execute()
        taken = (JobLock.update(holder=holder, locked_until=now + timedelta(seconds=lock_seconds),
                                last_started_at=now, runs=JobLock.runs + 1)
                 .where(condition).execute())
    return taken == 1


def renew_job_lock(name, holder, lock_seconds):
    """Extend a lock `holder` still holds; False if it lost it."""
    now = database_now()
    with write_transaction():
        renewed = (JobLock.update(locked_until=now + timedelta(seconds=lock_seconds))
                   .where(JobLock.name == name, JobLock.holder == holder).execute())
    return renewed == 1


def release_job_lock(name, holder, result=None, error=None):
    """Release the lock and record how the run ended."""
    with write_transaction():
        (JobLock.update(holder=None, locked_until=None, last_finished_at=database_now(),
                        last_result=None if result is None else str(result)[:2000],
                        last_error=None if error is None else str(error)[:2000])
         .where(JobLock.name == name, JobLock.holder == holder).execute())


class JobLockKeeper:
    """Renews a job lock in a background thread while a long job runs, so it never expires mid-run."""

    def __init__(self, name, holder, lock_seconds):
        self.name, self.holder, self.lock_seconds = name, holder, JOB_LOCK_SECONDS or lock_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-lock-{name}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(self.lock_seconds)

    def _run(self):
        while not self._stop.wait(self.lock_seconds / 3):
            try:
                with database.connection_context():
                    if not renew_job_lock(self.name, self.holder, self.lock_seconds):
                        log.warning("job %s: lost its lock while running", self.name)
                        return
            except peewee.PeeweeException:
                log.exception("job %s: could not renew its lock", self.name)
