"""The tables that keep background jobs single: the scheduler lease and one lock row per job.

Both are leases rather than database locks held open: a row names its holder and
when its claim runs out, so a process that dies holding one is replaced once the
claim expires, and nothing waits on a connection that no longer exists.
"""
import peewee

from app.db import database


class SchedulerLease(peewee.Model):
    """Which `jitbroker scheduler` process is the active one; the others stand by.

    One row (`name` = "scheduler"). The active process renews `expires_at` every
    heartbeat; `heartbeat_at` is what readiness checks read.
    """

    name = peewee.CharField(max_length=32, primary_key=True)
    holder = peewee.CharField(max_length=200, null=True)
    acquired_at = peewee.DateTimeField(null=True)
    heartbeat_at = peewee.DateTimeField(null=True)
    expires_at = peewee.DateTimeField(null=True)

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_scheduler_lease"


class JobLock(peewee.Model):
    """One row per job: who runs it now (until `locked_until`) and how its last run went."""

    name = peewee.CharField(max_length=64, primary_key=True)
    holder = peewee.CharField(max_length=200, null=True)
    locked_until = peewee.DateTimeField(null=True)
    last_started_at = peewee.DateTimeField(null=True)
    last_finished_at = peewee.DateTimeField(null=True)
    last_result = peewee.TextField(null=True)
    last_error = peewee.TextField(null=True)
    runs = peewee.IntegerField(default=0)

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_job_lock"
