"""The scheduler lease and per-job locks, on SQLite and PostgreSQL."""
import threading
import time

from app.jobs import Job, lease, run_due_jobs, run_job
from app.jobs.models import JobLock


def test_only_one_holder_gets_the_scheduler_lease(app):
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=30)
    assert not lease.acquire_scheduler_lease("host-b:2", lease_seconds=30)
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=30), "the holder renews its own lease"
    assert lease.scheduler_lease()["holder"] == "host-a:1"


def test_a_standby_takes_the_lease_once_it_expired(app):
    assert lease.acquire_scheduler_lease("host-a:1", lease_seconds=1)
    assert not lease.acquire_scheduler_lease("host-b:2", lease_seconds=1)
    time.sleep(1.2)
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


def test_a_job_locked_by_another_process_is_skipped(app):
    calls = []
    job = Job("probe", lambda: calls.append(1) or "ran", 60)
    assert lease.acquire_job_lock("probe", "other-host:9", lock_seconds=60)

    outcome = run_job(job, "me:1")

    assert not outcome.ran and outcome.skipped == "running elsewhere"
    assert calls == []


def test_an_expired_job_lock_is_taken_over(app):
    job = Job("probe", lambda: "ran", 60)
    assert lease.acquire_job_lock("probe", "crashed-host:9", lock_seconds=1)
    time.sleep(1.2)
    outcome = run_job(job, "me:1")
    assert outcome.ran and outcome.result == "ran"


def test_a_job_run_records_its_outcome_and_frees_its_lock(app):
    run_job(Job("probe", lambda: "3 things done", 60), "me:1")
    row = JobLock.get_by_id("probe")
    assert row.holder is None and row.last_result == "3 things done" and row.last_finished_at is not None


def test_a_failing_job_reports_its_error_and_frees_its_lock(app):
    def broken():
        raise RuntimeError("mail server on fire")

    outcome = run_job(Job("probe", broken, 60), "me:1")
    assert outcome.ran and "mail server on fire" in outcome.error
    assert JobLock.get_by_id("probe").holder is None
    assert run_job(Job("probe", lambda: "ok", 60), "me:1").ran


def test_a_long_job_keeps_renewing_its_lock(app):
    def slow():
        time.sleep(2.5)
        return "done"

    outcome_box = []
    runner = threading.Thread(target=lambda: outcome_box.append(_run_in_app(app, Job("slow", slow, 60, lock_seconds=1))))
    runner.start()
    time.sleep(1.8)  # past the first lock period: still held thanks to the renewals
    assert not lease.acquire_job_lock("slow", "other-host:9", lock_seconds=60)
    runner.join(10)
    assert outcome_box[0].result == "done"


def _run_in_app(app, job):
    with app.app_context():
        return run_job(job, "me:1")


def test_run_jobs_runs_a_job_only_once_its_interval_passed_unless_forced(app, monkeypatch):
    calls = []
    monkeypatch.setattr("app.jobs.JOBS", {"probe": Job("probe", lambda: calls.append(1) or len(calls), 3600)})

    assert run_due_jobs()["probe"].result == 1
    assert run_due_jobs()["probe"].skipped == "running elsewhere or not due yet"
    assert run_due_jobs(force=True)["probe"].result == 2
