"""A scheduler started before its EPM is reachable: one WARNING line, never a traceback."""
import logging
import time

from apscheduler.schedulers.background import BackgroundScheduler

from app.configuration import update_configuration
from app.epm.errors import EpmRetryable
from app.epm.tokens import clear_token_cache
from app.jobs import registry
from app.jobs.registry import EPM_RETRY_SECONDS, JOBS, Job, run_job
from app.jobs.scheduler import LeasedScheduler
from tests.jobs.test_jobs_scheduler import Running
from tests.live import free_port
from tests.waiting import wait_until


def test_a_job_that_cannot_reach_epm_logs_one_warning_line_without_a_traceback(app, caplog):
    clear_token_cache()
    update_configuration({"pmc_host": f"http://127.0.0.1:{free_port()}", "client_id": "broker-client",
                          "client_secret": "broker-secret"})
    caplog.set_level(logging.INFO)

    first = run_job(JOBS["reconcile"])
    second = run_job(JOBS["reconcile"])

    assert first.ran and "Connection refused" in first.error and second.error == first.error
    problems = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [(record.name, record.exc_info) for record in problems] == [("app.jobs.registry", None)]
    assert "job reconcile could not use EPM" in problems[0].getMessage()
    assert "Connection refused" in problems[0].getMessage()
    clear_token_cache()


def test_epm_answering_again_makes_the_next_outage_a_warning_again(app, caplog, fake_epm):
    caplog.set_level(logging.INFO)
    port = free_port()
    configured = fake_epm.url
    secret = {"client_secret": fake_epm.client_secret}  # a moved host needs the secret again
    update_configuration({"pmc_host": f"http://127.0.0.1:{port}", **secret})
    run_job(JOBS["reconcile"])
    update_configuration({"pmc_host": configured, **secret})
    assert run_job(JOBS["reconcile"]).error is None
    update_configuration({"pmc_host": f"http://127.0.0.1:{port}", **secret})
    run_job(JOBS["reconcile"])

    warnings = [record for record in caplog.records
                if record.name == "app.jobs.registry" and record.levelno == logging.WARNING]
    assert len(warnings) == 2


def test_a_job_that_could_not_use_epm_is_tried_again_sooner_each_time_less_soon(app, caplog):
    clear_token_cache()
    update_configuration({"pmc_host": f"http://127.0.0.1:{free_port()}", "client_id": "broker-client",
                          "client_secret": "broker-secret"})
    caplog.set_level(logging.INFO)

    outcomes = [run_job(JOBS["reconcile"], scheduled=True) for _ in range(len(EPM_RETRY_SECONDS) + 1)]

    assert [outcome.run_again_in for outcome in outcomes] == [*EPM_RETRY_SECONDS, None]
    said = [record.getMessage() for record in caplog.records if record.name == "app.jobs.registry"]
    assert [line.split("; ")[1].split(":")[0] for line in said] == [
        *(f"it runs again in {seconds} s" for seconds in EPM_RETRY_SECONDS),
        f"it runs again in {JOBS['reconcile'].interval_seconds} s"]
    clear_token_cache()


def test_epm_answering_again_resets_how_soon_a_job_is_tried_again(app, fake_epm):
    secret = {"client_secret": fake_epm.client_secret}
    update_configuration({"pmc_host": f"http://127.0.0.1:{free_port()}", **secret})
    assert run_job(JOBS["reconcile"], scheduled=True).run_again_in == EPM_RETRY_SECONDS[0]
    assert run_job(JOBS["reconcile"], scheduled=True).run_again_in == EPM_RETRY_SECONDS[1]
    update_configuration({"pmc_host": fake_epm.url, **secret})
    assert run_job(JOBS["reconcile"], scheduled=True).run_again_in is None
    update_configuration({"pmc_host": f"http://127.0.0.1:{free_port()}", **secret})
    assert run_job(JOBS["reconcile"], scheduled=True).run_again_in == EPM_RETRY_SECONDS[0]


def test_the_scheduler_runs_a_job_that_could_not_use_epm_again_after_the_shorter_wait(app, monkeypatch):
    # A scheduler started before its EPM (the demo's, a host rebooted with EPM's side): the job's next run is not
    # a whole interval away.
    monkeypatch.setattr(registry, "EPM_RETRY_SECONDS", (0.5, 1))
    calls = []

    def reach_epm():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise EpmRetryable("EPM is not listening yet")
        return "reached"

    running = Running(app, "host-a:1", jobs=[Job("reach_epm", reach_epm, 3600)]).start()
    try:
        wait_until(lambda: len(calls) >= 2, timeout=15, message="the job to run again after half a second")
        wait_until(lambda: len(running.scheduler.outcomes) >= 2, message="the second run's outcome")
    finally:
        running.stop()
    first, second = (outcome for _name, outcome in running.scheduler.outcomes)
    assert (first.error, first.run_again_in) == ("EpmRetryable: EPM is not listening yet", 0.5)
    assert (second.error, second.result, second.run_again_in) == (None, "reached", None)
    assert calls[1] - calls[0] >= 0.5


def test_a_job_that_could_not_use_epm_as_the_scheduler_stops_is_not_rescheduled(app):
    # The stop signal came while the job ran: its scheduler has stopped and holds no job to bring forward.
    def reach_epm():
        raise EpmRetryable("EPM is not listening yet")

    job = Job("reach_epm", reach_epm, 3600)
    scheduler = LeasedScheduler(app, jobs=[job], holder="host-a:1")
    scheduler._scheduler = BackgroundScheduler()  # as after shutdown(): stopped, no job in it
    scheduler._active_until = time.monotonic() + 60

    scheduler._run(job)

    [(name, outcome)] = scheduler.outcomes
    assert (name, outcome.error, outcome.run_again_in) == ("reach_epm", "EpmRetryable: EPM is not listening yet", 60)
