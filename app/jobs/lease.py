"""The scheduler lease: one process of a deployment runs the background jobs at a time.

A standby takes it over only once the holder stopped renewing it; `run-jobs` takes the same lease,
so cron never runs jobs beside an active scheduler."""
import os

import peewee

from app import claims
from app.claims import database_now
from app.jobs.models import SchedulerLease

SCHEDULER_LEASE = "scheduler"


# What the environment set that cannot be used, one message each: the scheduler and `run-jobs` refuse to run with
# them (check_lease_times); every other command and the web service, which only read how stale a heartbeat may get,
# go on with the defaults rather than fail at import.
REFUSED_FROM_ENVIRONMENT = []


def _seconds_from_environment(variable, default):
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        REFUSED_FROM_ENVIRONMENT.append(f"{variable} must be a whole number of seconds (1 or more), not {value!r}")
        return default
    return int(value)


# The active scheduler renews every HEARTBEAT_SECONDS; a standby takes over once the
# lease has not been renewed for LEASE_SECONDS. Shorter times hand over faster after a
# crash but renew more often; the environment can set both.
HEARTBEAT_SECONDS = _seconds_from_environment("JITBROKER_SCHEDULER_HEARTBEAT_SECONDS", 10)
LEASE_SECONDS = _seconds_from_environment("JITBROKER_SCHEDULER_LEASE_SECONDS", 30)
# /readyz: a heartbeat older than this means no scheduler is running jobs.
STALE_AFTER_SECONDS = LEASE_SECONDS


def check_lease_times(lease_seconds=None, heartbeat_seconds=None):
    """ValueError, naming the environment variables and their values, when the environment set a time that is not
    a whole number of seconds, or unless the lease (LEASE_SECONDS by default) outlasts at least two heartbeats
    (HEARTBEAT_SECONDS): one renewal late must not hand the jobs over."""
    if REFUSED_FROM_ENVIRONMENT:
        raise ValueError("; ".join(REFUSED_FROM_ENVIRONMENT))
    lease_seconds = LEASE_SECONDS if lease_seconds is None else lease_seconds
    heartbeat_seconds = HEARTBEAT_SECONDS if heartbeat_seconds is None else heartbeat_seconds
    if heartbeat_seconds * 2 > lease_seconds:
        raise ValueError(f"JITBROKER_SCHEDULER_LEASE_SECONDS ({lease_seconds}) must be at least twice "
                         f"JITBROKER_SCHEDULER_HEARTBEAT_SECONDS ({heartbeat_seconds}): the lease must outlast "
                         "at least two heartbeats")


def acquire_scheduler_lease(holder, lease_seconds=LEASE_SECONDS):
    """Take or renew the scheduler lease for `holder` (free, expired, or already its own); True if it holds it now."""
    now = database_now()
    lease = SchedulerLease
    lease.insert(name=SCHEDULER_LEASE).on_conflict_ignore().execute()
    return claims.claim(lease, lease.name == SCHEDULER_LEASE, lease_seconds, holder=holder, now=now, heartbeat_at=now,
                        acquired_at=peewee.Case(None, [(lease.holder == holder, lease.acquired_at)], now))


def release_scheduler_lease(holder):
    """Give the lease up at once (a clean shutdown), so a standby need not wait for it to expire."""
    lease = SchedulerLease
    return claims.release(lease, (lease.name == SCHEDULER_LEASE) & (lease.holder == holder), holder=None) == 1


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
        "expires_at": row.claimed_until,
        "heartbeat_age_seconds": max(0.0, (now - row.heartbeat_at).total_seconds()),
        "expired": row.holder is None or row.claimed_until is None or row.claimed_until < now,
    }


def heartbeat_age_seconds():
    """Seconds since the lease holder last renewed it, or None if none ever ran (for readiness checks)."""
    lease = scheduler_lease()
    return None if lease is None else lease["heartbeat_age_seconds"]
