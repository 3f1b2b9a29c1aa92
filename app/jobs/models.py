"""The tables of background jobs: the scheduler lease (a claim, app/claims.py, not a lock) and each job's last run."""
import peewee

from app.db import database


class SchedulerLease(peewee.Model):
    """Which process runs the jobs (one row, "scheduler"): the holder renews `claimed_until` each heartbeat."""

    name = peewee.CharField(max_length=32, primary_key=True)
    holder = peewee.CharField(max_length=200, null=True)
    acquired_at = peewee.DateTimeField(null=True)
    heartbeat_at = peewee.DateTimeField(null=True)
    claimed_until = peewee.DateTimeField(null=True, column_name="expires_at")

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_scheduler_lease"


class JobRun(peewee.Model):
    """One row per job: when it last started (for the interval skip) and how its last run went."""

    name = peewee.CharField(max_length=64, primary_key=True)
    last_started_at = peewee.DateTimeField(null=True)
    last_finished_at = peewee.DateTimeField(null=True)
    last_result = peewee.TextField(null=True)
    last_error = peewee.TextField(null=True)
    runs = peewee.IntegerField(default=0)

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_job_run"
