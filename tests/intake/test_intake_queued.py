"""Queued intake: the webhook stores a delivery and answers; the processor makes the ticket.

What EPM and ops rely on: every acknowledged delivery is stored raw before the answer,
nothing is lost or applied twice, a bad delivery is still refused or recorded with its
reason, and the tickets come out exactly as inline intake makes them.
"""
import json
import os
import threading
import time

import pytest

from app import contract
from app.db import database, deliveries
from app.intake import processor, service
from app.models import IncomingRequest, Task
from app.policies import rules as policy_rules
from app.policies.models import PolicyEvaluation
from tests import factories


@pytest.fixture
def app_settings():
    return {"intake_mode": "queued"}


def rows():
    return list(IncomingRequest.select().order_by(IncomingRequest.id))


def statuses():
    return [row.status for row in rows()]


def test_a_delivery_is_stored_raw_and_answered_before_it_becomes_a_ticket(deliver, api_account):
    body = factories.application_request("req-queued-1")
    raw = json.dumps(body, indent=1).encode()
    response = deliver(raw, headers={"User-Agent": "EPM-Webhook/1.0"})

    assert response.status_code == 200
    result = response.json["result"]
    assert result["status"] == contract.INCOMING_RECEIVED and result["ticket"] is None
    assert rows() == [] and processor.queued_count() == 1, "stored apart, not yet in the incoming-request log"
    # Taken into the log as queued, with everything the webhook stored and the sys_id EPM was given.
    assert processor.take_in() == 1 and processor.take_in() == 0
    [row] = rows()
    assert row.sys_id == result["incoming_request"]
    assert bytes(row.raw_body) == raw
    assert (row.event_type, row.request_id, row.status, row.queued) == (
        "URM_Native_Ticket_Created", "req-queued-1", contract.INCOMING_RECEIVED, True)
    assert row.content_type == "application/json" and row.headers["User-Agent"] == "EPM-Webhook/1.0"
    assert row.received_at is not None and row.processed_at is None and row.task_id is None
    assert Task.select().count() == 0

    assert processor.process_queued() == 1

    row = IncomingRequest.get_by_id(row.id)
    assert (row.status, row.queued) == (contract.INCOMING_PROCESSED, False)
    assert row.task.jit_request.request_id == "req-queued-1"
    assert row.processed_at >= row.received_at
    assert processor.process_queued() == 0


def test_the_processor_makes_the_same_ticket_inline_intake_makes(deliver, api_account):
    deliver(factories.admin_request("req-queued"))
    processor.process_queued()
    inline = factories.admin_request("req-inline")
    service.receive(service.Delivery(json.dumps(inline).encode(), "application/json"))

    def ticket(request_id):
        task = Task.get(Task.request_id == request_id)
        return {name: getattr(task, name) for name in (
            "sys_class_name", "state", "short_description", "assignment_group", "category", "kind", "requester",
            "host", "subject", "publisher", "requested_duration")}

    assert ticket("req-queued") == ticket("req-inline")
    assert Task.get(Task.request_id == "req-queued").number.startswith("INC")


def test_created_then_update_queued_together_finalize_the_ticket(deliver, api_account):
    deliver(factories.admin_request("req-admin-1"))
    deliver(factories.admin_decision("req-admin-1"))
    assert processor.process_queued() == 2
    assert statuses() == [contract.INCOMING_PROCESSED, contract.INCOMING_PROCESSED]
    task = Task.get()
    assert task.jit_request.final_decision is not None


def test_an_update_queued_before_its_created_event_waits_and_is_applied_with_it(deliver, api_account):
    deliver(factories.application_decision("req-early"))
    assert processor.process_queued() == 1
    [update] = rows()
    assert (update.status, update.queued) == (contract.INCOMING_RECEIVED, False)

    deliver(factories.application_request("req-early"))
    assert processor.process_queued() == 1
    assert statuses() == [contract.INCOMING_PROCESSED, contract.INCOMING_PROCESSED]
    assert Task.get().jit_request.final_decision is not None


def test_a_created_event_delivered_twice_makes_one_ticket(deliver, api_account):
    body = factories.application_request("req-twice")
    deliver(body)
    deliver(body)
    processor.process_queued()
    assert statuses() == [contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE]
    assert Task.select().count() == 1


@pytest.mark.parametrize("body, reason", [
    (b"{not json", "Malformed JSON"),
    (json.dumps({**factories.application_request(), "EventType": "Something_Else"}), "Unknown event type"),
    (json.dumps({key: value for key, value in factories.application_request().items() if key != "RequestId"}),
     "RequestId"),
    (json.dumps({**factories.application_request(), "RequestId": "%%RequestId%%"}), "RequestId"),
    (json.dumps({**factories.application_request(), "RequestId": "x" * 101}), "RequestId"),
])
def test_what_the_webhook_can_check_at_once_is_still_refused_at_once(deliver, api_account, body, reason):
    response = deliver(body)
    assert response.status_code == 400
    [row] = rows()
    assert (row.status, row.queued) == (contract.INCOMING_ERROR, False)
    assert reason in row.error or reason in json.dumps(response.json)
    assert processor.process_queued() == 0


def test_a_delivery_failing_the_full_validation_later_is_kept_as_an_error_and_the_next_goes_on(
        deliver, api_account):
    bad = factories.application_request("req-bad")
    bad["requestInfo"] = "not an object"
    assert deliver(bad).status_code == 200
    deliver(factories.application_request("req-good"))

    assert processor.process_queued() == 2
    failed, good = rows()
    assert (failed.status, failed.queued) == (contract.INCOMING_ERROR, False)
    assert "requestInfo" in failed.error and failed.processed_at is not None
    assert good.status == contract.INCOMING_PROCESSED
    assert [task.request_id for task in Task.select()] == ["req-good"]


def test_a_processing_failure_is_recorded_with_its_reason_and_does_not_stop_the_queue(
        deliver, api_account, monkeypatch):
    real_apply = service.apply_event

    def failing_once(delivery, event, fields):
        if fields["request_id"] == "req-boom":
            raise RuntimeError("the ticket table is on fire")
        return real_apply(delivery, event, fields)

    monkeypatch.setattr(processor, "apply_event", failing_once)
    deliver(factories.application_request("req-boom"))
    deliver(factories.application_request("req-fine"))

    assert processor.process_queued() == 2
    boom, fine = rows()
    assert boom.status == contract.INCOMING_ERROR and "the ticket table is on fire" in boom.error
    assert not boom.queued and fine.status == contract.INCOMING_PROCESSED
    assert Task.select().count() == 1


def test_a_new_ticket_gets_its_policy_evaluation(deliver, api_account, admin):
    policy_rules.create_rule({"name": "Installers deny", "outcome": "auto_deny", "deny_reason": "No"}, "root")
    evaluated = []
    deliver(factories.application_request("req-policy"))
    processor.process_queued(run_evaluation=evaluated.append)
    [evaluation] = PolicyEvaluation.select()
    assert evaluation.task.request_id == "req-policy"
    assert evaluated == [evaluation.id]


def test_the_processor_thread_turns_deliveries_into_tickets_until_stopped(app, deliver, api_account):
    stop = threading.Event()
    thread = processor.DeliveryProcessor(app, poll_seconds=0.05, nice=0).start(stop)
    try:
        deliver(factories.application_request("req-thread"))
        deadline = time.monotonic() + 15
        while Task.select().count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Task.get().request_id == "req-thread"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_processor_thread_runs_at_the_lower_cpu_priority_it_is_given(app):
    stop = threading.Event()
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    nice = max(7, own)
    thread = processor.DeliveryProcessor(app, poll_seconds=0.05, nice=nice).start(stop)
    try:
        deadline = time.monotonic() + 10
        while os.getpriority(os.PRIO_PROCESS, thread.native_id) != nice and time.monotonic() < deadline:
            time.sleep(0.02)
        assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == nice
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # the rest of the process keeps its own
    finally:
        stop.set()
        thread.join(10)


def test_the_processor_waits_while_a_burst_is_arriving_and_works_it_off_after(app, deliver, api_account):
    waiting = processor.DeliveryProcessor(app, pause_above=5)
    waiting.arrivals = processor.ArrivalRate(look_every_seconds=0.3)
    started = time.monotonic()
    assert not waiting.busy()  # the first look only notes where the deliveries are
    for number in range(10):
        deliver(factories.application_request(f"req-burst-{number}"))
    time.sleep(max(0.0, started + 0.35 - time.monotonic()))
    assert waiting.busy()  # ten in a moment: well over 5 a second
    assert processor.process_queued(should_pause=waiting.busy) == 0
    time.sleep(0.35)  # nothing more arrives
    assert processor.process_queued(should_pause=waiting.busy) == 10
    assert Task.select().count() == 10


def test_taking_deliveries_into_the_log_is_not_counted_as_arrivals(app, deliver, api_account):
    for number in range(5):
        deliver(factories.application_request(f"req-rate-{number}"))
    rate = processor.ArrivalRate(look_every_seconds=0)
    rate.update()
    assert processor.take_in(3) == 3
    time.sleep(0.01)
    assert rate.update() == 0, "moving 3 of 5 is no arrival"
    deliver(factories.application_request("req-rate-new"))
    assert rate.update() > 0, "a new delivery is"


def test_two_processors_at_once_apply_each_delivery_once(app, deliver, api_account):
    for number in range(12):
        deliver(factories.application_request(f"req-pair-{number}"))
        deliver(factories.application_decision(f"req-pair-{number}"))

    def work():
        with app.app_context(), database.connection_context():
            processor.process_queued()

    workers = [threading.Thread(target=work) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert set(statuses()) == {contract.INCOMING_PROCESSED}
    numbers = sorted(int(number[3:]) for (number,) in Task.select(Task.number).tuples())
    assert len(numbers) == 12 and numbers[-1] - numbers[0] == 11
    assert all(task.jit_request.final_decision for task in Task.select())


def test_the_queued_webhook_costs_one_statement_once_the_credentials_are_known(
        app, deliver, api_account, monkeypatch):
    deliver(factories.application_request())  # the first one pays the password check and the reads
    concrete = deliveries.obj
    statements = []
    real_execute = concrete.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        statements.append(sql)
        return real_execute(sql, params, *args, **kwargs)

    monkeypatch.setattr(concrete, "execute_sql", counting)
    assert deliver(factories.application_request()).status_code == 200
    assert len(statements) == 1 and statements[0].startswith("INSERT INTO"), statements


def test_process_deliveries_command(runner, deliver, api_account):
    deliver(factories.application_request("req-cli"))
    result = runner.invoke(args=["process-deliveries"])
    assert result.exit_code == 0, result.output
    assert "1 stored deliveries processed; 0 still queued" in result.output
    assert Task.get().request_id == "req-cli"


def test_upgrading_a_database_from_before_queued_intake_adds_the_column_and_its_index(app):
    from app.migrations import upgrade
    from app.models import SchemaVersion

    table = IncomingRequest._meta.table_name
    database.execute_sql("DROP INDEX incomingrequest_queued_id")
    database.execute_sql(f"ALTER TABLE {table} DROP COLUMN queued")
    SchemaVersion.delete().where(SchemaVersion.version == 11).execute()

    assert upgrade() == ["deliveries stored for the processor (queued intake)"]
    assert "queued" in {column.name for column in database.get_columns(table)}
    assert ["queued", "id"] in [index.columns for index in database.get_indexes(table)]
    assert IncomingRequest.select().where(IncomingRequest.queued == True).count() == 0  # noqa: E712
