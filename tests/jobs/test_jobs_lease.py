"""The scheduler lease, each job's last run, and `run-jobs` under the lease, on SQLite and PostgreSQL."""
from datetime import timedelta

import pytest

from app.claims import database_now
from app.jobs import lease
from app.jobs.models import JobRun
from app.jobs.registry import Job, LeaseHeld, run_due_jobs, run_job
from tests.waiting import wait_until


def test_only_one_holder_gets_the_scheduler_lease(app):
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=30)
    assert not lease.acquire_scheduler_lease("host-b:2", lease_seconds=30)
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=30), "the holder renews its own lease"
    assert lease.scheduler_lease()["holder"] == "host-a:1"


def test_a_standby_takes_the_lease_once_it_expired(app):
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=1)
    assert not lease.acquire_scheduler_lease("host-b:2", lease_seconds=1)
    real_now = lease.database_now
    with pytest.MonkeyPatch.context() as clock:  # the lease's length passes
        clock.setattr(lease, "database_now", lambda: real_now() + timedelta(seconds=1.2))
        assert lease.acquire_scheduler_lease("host-b:2", lease_seconds=30)
    assert not lease.acquire_scheduler_lease("host-a:1", lease_seconds=30), "the old holder does not get it back"


def test_a_released_lease_is_free_at_once(app):
    assert lease.acquire_scheduler_lease("host-a:1")
    assert lease.release_scheduler_lease("host-a:1")
    assert lease.acquire_scheduler_lease("host-b:2")


def test_heartbeat_age_is_none_before_any_scheduler_ran_and_small_after_a_renewal(app):
    assert lease.heartbeat_age_seconds() is None
    lease.acquire_scheduler_lease("host-a:1")
    age = lease.heartbeat_age_seconds()
    assert 0 <= age < 5
    assert not lease.scheduler_lease()["expired"]


def test_run_jobs_refuses_while_a_scheduler_holds_the_lease_and_runs_nothing(app, monkeypatch):
    calls = []
    monkeypatch.setattr("app.jobs.registry.JOBS", {"probe": Job("probe", lambda: calls.append(1) or "ran", 60)})
    assert lease.acquire_scheduler_lease("scheduler-host:9:scheduler:ab12", lease_seconds=60)

    with pytest.raises(LeaseHeld) as held:
        run_due_jobs(force=True)

    assert held.value.state["holder"] == "scheduler-host:9:scheduler:ab12"
    assert calls == []
    assert lease.scheduler_lease()["holder"] == "scheduler-host:9:scheduler:ab12", "the scheduler keeps its lease"


def test_run_jobs_holds_the_lease_while_it_runs_and_frees_it_after(app, monkeypatch):
    holders = []
    monkeypatch.setattr("app.jobs.registry.JOBS", {"probe": Job("probe", lambda: holders.append(
        lease.scheduler_lease()["holder"]) or "ran", 60)})

    assert run_due_jobs()["probe"].result == "ran"

    assert ":run-jobs:" in holders[0]
    assert lease.acquire_scheduler_lease("scheduler-host:9", lease_seconds=60), "free at once after run-jobs"


def test_run_jobs_renews_the_lease_while_a_long_job_runs(app, monkeypatch):
    monkeypatch.setattr(lease, "HEARTBEAT_SECONDS", 0.2)
    monkeypatch.setattr(lease, "LEASE_SECONDS", 1)
    taken_by_another = []

    def slow():
        # Run on past the lease's first expiry: only its renewals keep it.
        first_expiry = lease.scheduler_lease()["expires_at"]
        wait_until(lambda: database_now() >= first_expiry + timedelta(seconds=1), timeout=10,
                   message="the lease's first expiry to pass")
        taken_by_another.append(lease.acquire_scheduler_lease("scheduler-host:9", lease_seconds=60))
        return "done"

    monkeypatch.setattr("app.jobs.registry.JOBS", {"slow": Job("slow", slow, 60)})
    assert run_due_jobs()["slow"].result == "done"
    assert taken_by_another == [False]


def test_a_job_run_records_its_outcome(app):
    run_job(Job("probe", lambda: "3 things done", 60))
    row = JobRun.get_by_id("probe")
    assert row.last_result == "3 things done" and row.last_finished_at is not None and row.runs == 1


def test_a_failing_job_reports_its_error_and_the_next_run_goes_ahead(app):
    def broken():
        raise RuntimeError("mail server on fire")

    outcome = run_job(Job("probe", broken, 60))
    assert outcome.ran and "mail server on fire" in outcome.error
    assert "mail server on fire" in JobRun.get_by_id("probe").last_error
    assert run_job(Job("probe", lambda: "ok", 60)).ran


def test_run_jobs_runs_a_job_only_once_its_interval_passed_unless_forced(app, monkeypatch):
    calls = []
    monkeypatch.setattr("app.jobs.registry.JOBS", {"probe": Job("probe", lambda: calls.append(1) or len(calls), 3600)})

    assert run_due_jobs()["probe"].result == 1
    assert run_due_jobs()["probe"].skipped == "ran less than an interval ago"
    assert run_due_jobs(force=True)["probe"].result == 2
