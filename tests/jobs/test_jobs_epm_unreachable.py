"""A scheduler started before its EPM is reachable: one WARNING line, never a traceback."""
import logging

from app.configuration import update_configuration
from app.epm.tokens import clear_token_cache
from app.jobs.registry import JOBS, run_job
from tests.live import free_port


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
