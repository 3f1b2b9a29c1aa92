"""`[logging] level` decides what reaches stdout only: records of level WARNING and above are stored whatever it
says, so refused webhook deliveries stay counted (/metrics, the dashboard) and on the Application log page."""
import logging
import re

import pytest

from app.configuration import update_configuration
from app.logs import store as log_store
from app.logs.setup import WEBHOOK_AUTH_LOGGER
from tests.logs.conftest import stdout_reader, stored_log

WEBHOOK = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"

log = logging.getLogger("app.tests.level")


@pytest.fixture
def app_settings():
    return {"log_level": "ERROR"}


def test_refused_webhook_deliveries_are_counted_whatever_the_stdout_level(app, client, approver_auth):
    assert client.post(WEBHOOK, json={}, headers={"Authorization": "Basic bm9ib2R5Om5vcGU="}).status_code == 401
    assert client.post(WEBHOOK, json={}, headers=approver_auth).status_code == 403
    log_store.flush(5)

    metrics = client.get("/metrics").get_data(as_text=True)

    assert re.search(r"^jitbroker_webhook_auth_failures_total 2\.0$", metrics, re.M), \
        [line for line in metrics.splitlines() if line.startswith("jitbroker_webhook_auth")]
    assert [entry.level for entry in stored_log() if entry.logger == WEBHOOK_AUTH_LOGGER] == ["WARNING", "WARNING"]


def test_a_warning_is_stored_but_not_printed_below_the_stdout_level(app, capsys):
    stdout_lines = stdout_reader(app, capsys)

    log.warning("EPM answered slowly")
    log.error("EPM refused the decision")
    log.info("routine detail")

    assert [line["message"] for line in stdout_lines() if line["logger"] == log.name] == ["EPM refused the decision"]
    assert [(entry.level, entry.message) for entry in stored_log() if entry.logger == log.name] == [
        ("WARNING", "EPM answered slowly"), ("ERROR", "EPM refused the decision")]


def test_the_debug_switch_prints_the_brokers_debug_lines_whatever_the_stdout_level(app, capsys):
    stdout_lines = stdout_reader(app, capsys)
    update_configuration({"debug_logging": "true"})
    assert log_store.debug_switch.refresh()

    log.debug("token cache hit")
    logging.getLogger("apscheduler.executors.default").info('Running job "deliver_outbox" (scheduled at ...)')

    assert [line["message"] for line in stdout_lines()] == ["token cache hit"]


def test_a_scheduler_warning_is_stored_but_not_printed_below_the_stdout_level(app, capsys):
    stdout_lines = stdout_reader(app, capsys)

    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")

    assert stdout_lines() == []
    assert [entry.message for entry in stored_log() if entry.logger == "apscheduler.scheduler"] == [
        "Run time of job was missed"]
