"""`[intake] synchronous_commit`: whether a queued delivery's answer waits for the disk.

What ops rely on: "on" (the default) stores deliveries as everything else is stored;
"off" stores only the deliveries' INSERT on connections whose commits do not wait for
the disk, while tickets, decisions and the audit trail keep the database's durability,
and the deliveries are stored, processed and visible exactly as before.
"""
import json
import threading
import time
from pathlib import Path

import pytest

from app.db import database, deliveries, is_sqlite, release_connection
from app.intake import processor, service
from app.models import IncomingRequest, QueuedDelivery, Task
from tests import factories

QUEUED_OFF = {"intake_mode": "queued", "intake_synchronous_commit": "off"}


def commits_wait_for_the_disk(proxy):
    if is_sqlite():
        # 2 is FULL, which syncs the WAL at every commit; 1 is NORMAL, which leaves that to checkpoints.
        return {2: True, 1: False}[proxy.execute_sql("PRAGMA synchronous").fetchone()[0]]
    return {"on": True, "off": False}[proxy.execute_sql("SHOW synchronous_commit").fetchone()[0]]


@pytest.mark.parametrize("app_settings", [{"intake_mode": "queued"}])
def test_by_default_deliveries_commits_wait_for_the_disk_as_everything_else_does(app):
    assert deliveries.obj is not database.obj  # connections of their own, which leave checkpoints to the processor
    assert commits_wait_for_the_disk(database) and commits_wait_for_the_disk(deliveries)


@pytest.mark.parametrize("app_settings", [{"intake_mode": "inline", "intake_synchronous_commit": "off"}])
def test_inline_intake_stores_every_delivery_on_the_brokers_own_connections(app):
    assert deliveries.obj is database.obj and commits_wait_for_the_disk(database)


@pytest.mark.parametrize("app_settings", [QUEUED_OFF])
def test_off_stores_only_the_deliveries_without_waiting_for_the_disk(app, deliver, api_account, monkeypatch):
    assert deliveries.obj is not database.obj
    assert commits_wait_for_the_disk(database), "tickets, decisions and audit entries still wait"
    assert not commits_wait_for_the_disk(deliveries)

    deliver(factories.application_request("req-off-1"))  # the view's path (first credentials)
    inserts = {"database": [], "deliveries": []}
    for name, proxy in (("database", database), ("deliveries", deliveries)):
        real = proxy.obj.execute_sql

        def counting(sql, params=None, *args, _real=real, _name=name, **kwargs):
            if sql.startswith("INSERT"):
                inserts[_name].append(sql)
            return _real(sql, params, *args, **kwargs)

        monkeypatch.setattr(proxy.obj, "execute_sql", counting)
    assert deliver(factories.admin_request("req-off-2")).status_code == 200  # the direct path
    assert deliver(factories.admin_decision("req-off-2")).status_code == 200
    monkeypatch.undo()
    assert len(inserts["deliveries"]) == 2 and inserts["database"] == []

    # What the deliveries' connections committed, the broker's own read and process.
    assert QueuedDelivery.select().count() == 3
    assert processor.process_queued() == 3
    assert {task.jit_request.request_id for task in Task.select()} == {"req-off-1", "req-off-2"}
    assert Task.select().count() == 2


def stored(count, prefix):
    for index in range(count):
        service.Delivery(json.dumps(factories.application_request(f"{prefix}-{index}")).encode(),
                         "application/json").store_queued("URM_Native_Ticket_Created", f"{prefix}-{index}")
    release_connection()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("app_settings", [{"intake_mode": "queued"}, QUEUED_OFF])
def test_the_processor_checkpoints_the_wal_the_webhooks_inserts_leave_to_it(app, database_url):
    path = Path(database_url.removeprefix("sqlite:///"))
    stored(1500, "req-wal")  # ~2,000 WAL pages: twice what SQLite's own default would checkpoint at
    size_before = path.stat().st_size
    assert Path(f"{path}-wal").stat().st_size > 1000 * 4096, "the inserts did not checkpoint"

    # A burst: deliveries keep arriving faster than the processor's pause_above, so it processes
    # none (whose commits would checkpoint by themselves) and only waits.
    waiting = processor.DeliveryProcessor(app, pause_above=1)
    waiting.arrivals.update()
    stored(20, "req-burst-start")
    time.sleep(processor.PAUSE_CHECK_SECONDS)
    stop = threading.Event()
    thread = waiting.start(stop)
    # At most ~5,000 more WAL pages: far from the inserts' own limit (DELIVERIES_WAL_AUTOCHECKPOINT).
    deadline = time.monotonic() + 5
    while path.stat().st_size == size_before and time.monotonic() < deadline:
        stored(5, f"req-burst-{time.monotonic()}")
        time.sleep(0.05)
    stop.set()
    thread.join(10)
    assert path.stat().st_size > size_before + 1000 * 1024, "the processor copied the WAL into the database"
    assert IncomingRequest.select().count() == 0, "it took in and processed nothing meanwhile"
