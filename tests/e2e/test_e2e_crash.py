"""Crash during load: gunicorn's workers, then its master, SIGKILLed while EPM streams deliveries.

EPM sends each delivery until it gets a 2xx: what got no answer (the connection reset
by a killed worker, refused while the broker is down) or a 503 is sent again. After
the run every delivery has its stored row and its RequestId exactly one ticket, no
row is half-written, ticket numbers have no gap, and a fresh gunicorn on the same
database starts and takes new deliveries.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import contract
from app.models import IncomingRequest, Task
from tests import factories
from tests.conftest import WEBHOOK
from tests.live import LiveServer, is_running
from tests.e2e.streaming import Epm, assert_nothing_half_written, make_deliveries
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

REQUESTS = 80  # 240 deliveries: see make_deliveries
SENDERS = 6
# What is SIGKILLed once this share of the deliveries has been answered: the oldest worker
# (one that is serving, not one still booting); the master and its workers at once (the
# whole service crashes); the master alone (its orphaned workers go on serving until they
# notice, then exit and free the port).
KILLS = ((0.15, "worker"), (0.3, "worker"), (0.45, "worker"), (0.6, "master and workers"), (0.8, "master"))


def test_killed_workers_and_master_lose_no_delivery_and_leave_nothing_half_written(app, database_url, api_account):
    request_ids, updated, deliveries = make_deliveries(REQUESTS)
    total = len(deliveries)
    server = LiveServer(database_url, workers=2).start()
    epm = Epm(server.url)
    try:
        with ThreadPoolExecutor(SENDERS) as pool:
            sent = [pool.submit(epm.deliver, index, body) for index, body in enumerate(deliveries)]
            for share, victim in KILLS:
                wait_until(lambda: epm.answered >= share * total, timeout=60,
                           message=f"{share:.0%} of the deliveries answered")
                if victim == "worker":
                    wait_until(lambda: len(server.worker_pids()) == 2, timeout=60,
                               message="gunicorn to replace its killed worker")
                    server.kill_worker(server.worker_pids()[0])
                    continue
                workers = server.kill_master(with_workers=victim == "master and workers")
                # Workers whose master died exit by themselves, freeing the port for the restart.
                wait_until(lambda: not any(map(is_running, workers)), timeout=40,
                           message="the orphaned workers to exit")
                server = LiveServer(database_url, workers=2, port=server.port).start()
            for future in sent:
                future.result()
    finally:
        server.stop()

    assert epm.unexpected == []
    assert len(epm.answers) == total, "every delivery was answered 2xx in the end"
    assert epm.no_answer > 0, "the kills cut requests off"
    stored = assert_nothing_half_written(request_ids, updated)
    # Every 2xx names its stored row and, for a created event, the ticket of its RequestId.
    sys_ids = {row.sys_id for row in IncomingRequest.select(IncomingRequest.sys_id)}
    assert {answer["incoming_request"] for answer in epm.answers.values()} <= sys_ids
    numbers = {task.request_id: task.number for task in Task.select()}
    for index, answer in epm.answers.items():
        body = deliveries[index]
        if contract.find_event_type(body["EventType"]).is_created:
            assert answer["ticket"] == numbers[body["RequestId"]]

    # A fresh broker on the same database starts clean and takes a new delivery.
    with LiveServer(database_url, workers=1) as fresh:
        assert requests.get(fresh.url + "/healthz", timeout=10).json() == {"status": "ok"}
        checks = requests.get(fresh.url + "/readyz", timeout=10).json()["checks"]
        assert checks["database"] == "ok" and checks["migrations"].startswith("schema version")
        answer = requests.post(fresh.url + WEBHOOK, json=factories.admin_request(), auth=("epm", factories.PASSWORD),
                               timeout=30)
    assert answer.status_code == 200
    assert answer.json()["result"]["ticket"] == f"INC{10001 + len(request_ids):07d}"

    print(f"\ncrash during load ({database_url.split(':')[0]}): {total} deliveries, {len(KILLS)} kills, "
          f"{epm.no_answer} attempts without an answer, {epm.unavailable} 503s, {stored} rows stored, "
          f"0 lost, 0 half-written")
