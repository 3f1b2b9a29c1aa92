"""`jitbroker run-jobs` and `jobs status`, and the upgrade that adds the settings these jobs read."""
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from playhouse.migrate import SchemaMigrator, migrate

from app.db import database
from app.jobs import lease
from app.jobs.models import JobRun, SchedulerLease
from app.jobs.registry import JOBS, Job
from app.migrations import upgrade
from app.models import Account, Configuration, SchemaVersion, utcnow
from app.notify.models import Notification
from app.logs.models import OutboundCall
from tests import factories
from tests.live import ROOT


def old_outbound_call():
    return OutboundCall.create(method="GET", url="https://epm/x", path="/x", status=200, duration_ms=3.0, attempt=1,
                               what="request list", created_at=utcnow() - timedelta(days=45))


def test_run_jobs_refuses_while_a_scheduler_runs_the_jobs_and_runs_them_once_it_stopped(app, runner):
    call = old_outbound_call()
    assert lease.acquire_scheduler_lease("scheduler-host:7:scheduler:ab12", lease_seconds=300)

    result = runner.invoke(args=["run-jobs", "--force"])

    assert result.exit_code == 1, result.output
    assert "the scheduler scheduler-host:7:scheduler:ab12 is running the jobs" in result.output
    assert "nothing was run" in result.output
    assert OutboundCall.get_by_id(call.id), "the purge did not run beside the scheduler"

    lease.release_scheduler_lease("scheduler-host:7:scheduler:ab12")
    result = runner.invoke(args=["run-jobs", "--force"])
    assert result.exit_code == 0, result.output
    assert "deliver_outbox: 0" in result.output and "send_notifications: 0" in result.output
    assert OutboundCall.get_or_none(OutboundCall.id == call.id) is None
    assert "purge: skipped (ran less than an interval ago)" in runner.invoke(args=["run-jobs"]).output


def test_run_jobs_exits_non_zero_when_a_job_fails(app, runner, monkeypatch):
    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setitem(JOBS, "purge", Job("purge", broken, 3600))
    result = runner.invoke(args=["run-jobs", "--job", "purge"])
    assert result.exit_code == 1 and "purge: failed: RuntimeError: disk full" in result.output


def test_run_jobs_refuses_an_unknown_job(app, runner):
    result = runner.invoke(args=["run-jobs", "--job", "backup"])
    assert result.exit_code == 2 and "unknown job 'backup'" in result.output


def test_a_lease_shorter_than_two_heartbeats_is_refused_with_both_variables_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/jitbroker.db",
           "SECRET_KEY": "test-secret-key", "JITBROKER_SCHEDULER_LEASE_SECONDS": "15"}
    env.pop("JITBROKER_SCHEDULER_HEARTBEAT_SECONDS", None)  # its default: 10
    for command in ("scheduler", "run-jobs"):
        ended = subprocess.run([str(Path(sys.executable).parent / "jitbroker"), command], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
        assert ended.returncode == 2, (command, ended.stderr)
        assert ended.stderr == ("Error: JITBROKER_SCHEDULER_LEASE_SECONDS (15) must be at least twice "
                                "JITBROKER_SCHEDULER_HEARTBEAT_SECONDS (10): the lease must outlast at least two "
                                "heartbeats; nothing was run\n"), command


def test_a_lease_time_that_is_no_number_is_refused_by_the_scheduler_and_breaks_no_other_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite:///{tmp_path}/jitbroker.db",
           "SECRET_KEY": "test-secret-key", "JITBROKER_SCHEDULER_HEARTBEAT_SECONDS": "ten"}
    env.pop("JITBROKER_SCHEDULER_LEASE_SECONDS", None)
    jitbroker = str(Path(sys.executable).parent / "jitbroker")
    for command in ("scheduler", "run-jobs"):
        ended = subprocess.run([jitbroker, command], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)
        assert ended.returncode == 2, (command, ended.stderr)
        assert ended.stderr == ("Error: JITBROKER_SCHEDULER_HEARTBEAT_SECONDS must be a whole number of seconds "
                                "(1 or more), not 'ten'; nothing was run\n"), command
    # A command that runs no job is not stopped by it (before, every command failed at import with a traceback).
    initialised = subprocess.run([jitbroker, "init"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=120)
    assert initialised.returncode == 0 and "Traceback" not in initialised.stderr, initialised.stderr
    status = subprocess.run([jitbroker, "jobs", "status"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0 and "scheduler:" in status.stdout, status.stderr


def test_jobs_status_shows_the_active_scheduler_and_last_runs(app, runner):
    runner.invoke(args=["run-jobs", "--job", "sla_reminders"])
    lease.acquire_scheduler_lease("host-a:1:scheduler:00ff")
    output = runner.invoke(args=["jobs", "status"]).output
    assert "scheduler: active, holder host-a:1:scheduler:00ff, heartbeat" in output
    assert "sla_reminders: every 60 s, last started" in output and "deliver_outbox: every 5 s, never ran" in output


def test_jobs_status_says_a_run_whose_runner_died_did_not_finish(app, runner):
    from app.claims import database_now

    lease.acquire_scheduler_lease("host-a:1:scheduler:00ff")
    JobRun.create(name="purge", last_started_at=database_now(), runs=1)  # started by host-a, not finished yet
    assert "purge: every 3600 s, last started" in runner.invoke(args=["jobs", "status"]).output
    assert "; running now" in runner.invoke(args=["jobs", "status"]).output

    lease.release_scheduler_lease("host-a:1:scheduler:00ff")
    assert "; did not finish" in runner.invoke(args=["jobs", "status"]).output


def test_jobs_status_says_a_crashed_schedulers_run_did_not_finish_while_the_standby_holds_the_lease(app, runner):
    from app.claims import database_now

    lease.acquire_scheduler_lease("host-a:1:scheduler:00ff")
    JobRun.create(name="purge", last_started_at=database_now(), runs=1)
    # host-a dies mid-job; once its lease ran out, the standby on host-b takes over and holds a live lease.
    SchedulerLease.update(claimed_until=database_now() - timedelta(seconds=1)).execute()
    assert lease.acquire_scheduler_lease("host-b:2:scheduler:11ee")
    output = runner.invoke(args=["jobs", "status"]).output
    assert "scheduler: active, holder host-b:2:scheduler:11ee" in output
    assert "; did not finish" in output and "running now" not in output, output


def test_upgrading_an_older_database_adds_the_new_columns_with_their_defaults(app):
    factories.account("jchen", "user")
    Configuration.default()
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(migrator.drop_column("sys_user", "email"), migrator.drop_column("sys_user", "groups"),
            migrator.drop_column(Configuration._meta.table_name, "sla_minutes"),
            migrator.drop_column(Configuration._meta.table_name, "retention_incoming_days"))
    database.drop_tables([Notification])
    SchemaVersion.delete().where(SchemaVersion.version == 5).execute()

    assert upgrade() == ["scheduler lease, notifications and retention settings"]

    assert Account.by_username("jchen").email == "" and Account.by_username("jchen").groups == ""
    configuration = Configuration.default()
    assert configuration.sla_minutes == 0 and configuration.retention_incoming_days == 90
    assert Notification.select().count() == 0


def test_upgrading_adds_the_application_log_retention_with_its_default(app):
    Configuration.default()
    migrate(SchemaMigrator.from_database(database.obj).drop_column(Configuration._meta.table_name,
                                                                   "retention_app_log_days"))
    SchemaVersion.delete().where(SchemaVersion.version == 9).execute()

    assert upgrade() == ["application log retention setting"]
    assert Configuration.default().retention_app_log_days == 30


def test_upgrading_replaces_the_job_lock_table_by_last_runs_and_keeps_them(app, runner):
    database.execute_sql("CREATE TABLE x_bets_pmc_jit_job_lock (name VARCHAR(64) PRIMARY KEY, holder VARCHAR(200), "
                         "locked_until TIMESTAMP, last_started_at TIMESTAMP, last_finished_at TIMESTAMP, "
                         "last_result TEXT, last_error TEXT, runs INTEGER NOT NULL)")
    database.execute_sql("INSERT INTO x_bets_pmc_jit_job_lock (name, last_started_at, last_finished_at, last_result, "
                         "runs) VALUES ('purge', '2026-01-02 03:04:05', '2026-01-02 03:04:06', 'purged 3', 7)")
    database.drop_tables([JobRun])
    SchemaVersion.delete().where(SchemaVersion.version == 14).execute()

    assert upgrade() == ["one scheduler lease instead of a lock per job"]

    assert not database.table_exists("x_bets_pmc_jit_job_lock")
    assert "purge: every 3600 s, last started 2026-01-02 03:04:05 UTC; purged 3" in runner.invoke(
        args=["jobs", "status"]).output
