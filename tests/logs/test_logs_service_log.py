"""The service's log: JSON lines on stdout with request ids and tickets, WARNING+ stored, a debug switch."""
import json
import logging
import re

from app.configuration import update_configuration
from app.logs import store as log_store
from app.logs.setup import JsonFormatter, install_log_handlers, log_context
from tests.logs.conftest import stdout_reader, stored_log
from tests.waiting import wait_until

WEBHOOK = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"
LINE_FIELDS = {"time", "level", "logger", "message", "request_id", "ticket"}

log = logging.getLogger("app.tests.ops")


def test_every_line_on_stdout_is_a_json_record(app, capsys):
    stdout_lines = stdout_reader(app, capsys)
    log.warning("disk %s is almost full", "/var")
    (line,) = [line for line in stdout_lines() if line["logger"] == "app.tests.ops"]
    assert set(line) == LINE_FIELDS
    assert (line["level"], line["message"]) == ("WARNING", "disk /var is almost full")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])


def test_an_idle_scheduler_keeps_quiet_unless_the_level_is_debug(app, capsys, monkeypatch):
    import dataclasses

    stdout_lines = stdout_reader(app, capsys)
    logging.getLogger("apscheduler.executors.default").info('Running job "deliver_outbox" (scheduled at ...)')
    logging.getLogger("apscheduler.scheduler").warning("Run time of job was missed")
    assert [line["message"] for line in stdout_lines()] == ["Run time of job was missed"]

    monkeypatch.setitem(app.extensions, "settings", dataclasses.replace(app.extensions["settings"], log_level="DEBUG"))
    stdout_lines = stdout_reader(app, capsys)
    logging.getLogger("apscheduler.executors.default").info('Running job "deliver_outbox" (scheduled at ...)')
    assert [line["logger"] for line in stdout_lines()] == ["apscheduler.executors.default"]


def test_an_exception_is_part_of_its_line(app, capsys):
    stdout_lines = stdout_reader(app, capsys)
    try:
        raise ValueError("broken value")
    except ValueError:
        log.exception("processing failed")
    (line,) = [line for line in stdout_lines() if line["logger"] == "app.tests.ops"]
    assert line["level"] == "ERROR"
    assert "ValueError: broken value" in line["exception"]


def test_a_request_keeps_the_callers_request_id_and_echoes_it(app, client, capsys):
    stdout_lines = stdout_reader(app, capsys)
    answer = client.post(WEBHOOK, json={}, headers={"Authorization": "Basic bm9ib2R5Om5vcGU=",
                                                    "X-Request-Id": "epm-7f3a-0001"})
    assert answer.status_code == 401
    assert answer.headers["X-Request-Id"] == "epm-7f3a-0001"
    (line,) = [line for line in stdout_lines() if line["logger"] == "app.ops.webhook_auth"]
    assert line["request_id"] == "epm-7f3a-0001"


def test_a_request_without_a_usable_request_id_gets_a_new_one(app, client):
    first = client.get("/healthz").headers["X-Request-Id"]
    second = client.get("/healthz", headers={"X-Request-Id": "two words"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first) and re.fullmatch(r"[0-9a-f]{32}", second)
    assert first != second


def test_records_about_a_ticket_carry_its_number(app, capsys):
    stdout_lines = stdout_reader(app, capsys)
    with log_context(ticket="INC0010042"):
        log.warning("EPM is slow")
    log.warning("not about a ticket")
    tickets = [line["ticket"] for line in stdout_lines() if line["logger"] == "app.tests.ops"]
    assert tickets == ["INC0010042", None]


def test_secrets_never_reach_a_line(app, capsys):
    stdout_lines = stdout_reader(app, capsys)
    log.warning("token request body: grant_type=client_credentials&client_secret=hunter2-value")
    (line,) = [line for line in stdout_lines() if line["logger"] == "app.tests.ops"]
    assert "hunter2-value" not in json.dumps(line)


def test_warnings_are_stored_with_their_request_id_and_ticket(app):
    with log_context(ticket="INC0010007", request_id="req-42"):
        log.warning("delivery to EPM failed")
        log.info("routine detail")

    (entry,) = [entry for entry in stored_log() if entry.logger == "app.tests.ops"]
    assert (entry.level, entry.message, entry.request_id, entry.ticket) == (
        "WARNING", "delivery to EPM failed", "req-42", "INC0010007")


def test_the_debug_switch_stores_info_records_and_lowers_the_level(app):
    assert not logging.getLogger("app").isEnabledFor(logging.DEBUG)
    update_configuration({"debug_logging": "true"})
    assert log_store.debug_switch.refresh()

    log.info("routine detail")
    assert logging.getLogger("app.tests.ops").isEnabledFor(logging.DEBUG)
    assert [entry.message for entry in stored_log() if entry.logger == "app.tests.ops"] == ["routine detail"]

    update_configuration({"debug_logging": "false"})
    log_store.debug_switch.refresh()
    log.info("routine again")
    assert [entry.message for entry in stored_log() if entry.logger == "app.tests.ops"] == ["routine detail"]


def test_the_debug_switch_takes_effect_without_a_restart(app, monkeypatch):
    monkeypatch.setattr(log_store, "DEBUG_SWITCH_SECONDS", 0)  # the listener re-reads it before every row
    update_configuration({"debug_logging": "true"})

    log.warning("wakes the writer")
    stored_log()

    assert log_store.debug_switch.enabled
    log.info("now kept")
    assert "now kept" in [entry.message for entry in stored_log()]


def test_the_debug_switch_is_picked_up_while_nothing_is_logged(app, monkeypatch):
    monkeypatch.setattr(log_store, "DEBUG_SWITCH_SECONDS", 0.05)
    install_log_handlers(app)  # a new listener, which waits 0.05 s for a record before re-reading the switch
    update_configuration({"debug_logging": "true"})

    wait_until(lambda: log_store.debug_switch.enabled, timeout=10, message="the log writer to read the debug switch")
    assert logging.getLogger("app.tests.ops").isEnabledFor(logging.DEBUG)


def test_a_broken_record_neither_raises_nor_stops_the_log(app):
    broken = logging.LogRecord("app.tests.ops", logging.WARNING, __file__, 1, "%d items", ("not a number",), None)
    store = next(handler for handler in logging.getLogger().handlers if isinstance(handler, log_store.StoreHandler))

    store.handle(broken)
    assert "not a number" in json.loads(JsonFormatter().format(broken))["message"]
    log.warning("still logging")

    messages = [entry.message for entry in stored_log() if entry.logger == "app.tests.ops"]
    assert len(messages) == 2 and "not a number" in messages[0]
    assert messages[1] == "still logging"


def test_database_driver_records_are_never_stored(app):
    update_configuration({"debug_logging": "true"})
    log_store.debug_switch.refresh()
    logging.getLogger("peewee").warning("a query")
    assert not [entry for entry in stored_log() if entry.logger == "peewee"]


def test_app_log_page_and_api_filter_the_stored_records(app, as_admin, client, admin_auth):
    with log_context(ticket="INC0010003", request_id="req-abc"):
        log.error("EPM refused the decision <b>for good</b>")
    logging.getLogger("app.other").warning("something else")
    stored_log()

    page = as_admin.get("/admin/logs?level=ERROR").get_data(as_text=True)
    assert "EPM refused the decision &lt;b&gt;for good&lt;/b&gt;" in page
    assert "something else" not in page
    by_logger = client.get("/api/x_bets_pmc_jit/ops/app_log?logger=app.other", headers=admin_auth).json["result"]
    assert [entry["message"] for entry in by_logger] == ["something else"]
    by_ticket = client.get("/api/x_bets_pmc_jit/ops/app_log?ticket=inc0010003", headers=admin_auth).json["result"]
    assert [(entry["level"], entry["request_id"]) for entry in by_ticket] == [("ERROR", "req-abc")]
    wrong = client.get("/api/x_bets_pmc_jit/ops/app_log?level=LOUD", headers=admin_auth)
    assert wrong.status_code == 400 and "level" in wrong.json["error"]["detail"]


def test_refused_webhook_authentications_are_stored_for_the_dashboard(app, client, approver_auth):
    assert client.post(WEBHOOK, json={}, headers={"Authorization": "Basic bm9ib2R5Om5vcGU="}).status_code == 401
    assert client.post(WEBHOOK, json={}, headers=approver_auth).status_code == 403

    refused = [entry.message for entry in stored_log() if entry.logger == "app.ops.webhook_auth"]
    assert len(refused) == 2
    assert "(HTTP 401)" in refused[0] and "'nobody'" in refused[0]
    assert "(HTTP 403)" in refused[1] and "'jchen'" in refused[1]


def test_a_new_database_before_its_first_migration_logs_to_stdout_without_a_complaint(tmp_path, capfd, monkeypatch):
    """What `jitbroker init` prints first (the audit key it generated) comes before the app-log table exists."""
    from app import create_app

    monkeypatch.setattr(log_store, "_complained_at", None)
    app = create_app({"database_url": f"sqlite:///{tmp_path}/new.db", "secret_key": "test-secret-key"})
    with app.app_context():
        log.warning("logged before the first migration")
        assert log_store.flush(5)

    assert "could not be stored" not in capfd.readouterr().err


def test_a_row_the_database_refuses_is_complained_about(app, capfd, monkeypatch):
    from app.db import database
    from app.logs.models import AppLog

    monkeypatch.setattr(log_store, "_complained_at", None)
    table = AppLog._meta.table_name
    sqlite = app.extensions["settings"].database_url.startswith("sqlite")
    if sqlite:
        database.execute_sql(f'CREATE TRIGGER refuse BEFORE INSERT ON "{table}" '
                             "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    else:
        database.execute_sql("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'refused'; END $$ "
                             "LANGUAGE plpgsql")
        database.execute_sql(f'CREATE TRIGGER refuse BEFORE INSERT ON "{table}" FOR EACH ROW EXECUTE FUNCTION refuse()')
    try:
        log.warning("a line the table refuses")
        log_store.flush(5)
        assert "row could not be stored" in capfd.readouterr().err
    finally:
        database.execute_sql(f'DROP TRIGGER refuse{"" if sqlite else f" ON {table}"}')
        if not sqlite:
            database.execute_sql("DROP FUNCTION refuse()")
