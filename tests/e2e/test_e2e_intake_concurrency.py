"""Many deliveries at once against a real gunicorn: one ticket per request, numbers without gaps."""
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import contract
from app.models import AdminTicket, ApplicationAccessTicket, IncomingRequest, Task
from tests import factories
from tests.conftest import WEBHOOK
from tests.live import LiveServer

pytestmark = pytest.mark.e2e

THREADS = 16


def deliveries_for(request_ids):
    """Each created event twice (EPM retrying), and some updates, shuffled: some before their ticket."""
    deliveries = []
    for index, request_id in enumerate(request_ids):
        make = factories.application_request if index % 2 else factories.admin_request
        created = make(request_id=request_id)
        # Every created event twice (EPM retrying), and some updates before their ticket.
        deliveries += [created, created]
        if index % 5 == 0:
            update = factories.application_decision if index % 2 else factories.admin_decision
            deliveries.append(update(request_id))
    random.Random(7).shuffle(deliveries)
    return deliveries


def send_all(url, deliveries):
    local = threading.local()

    def send(body):
        if not hasattr(local, "session"):
            local.session = requests.Session()
            local.session.auth = ("epm", factories.PASSWORD)
        response = local.session.post(url + WEBHOOK, json=body, timeout=30)
        return response.status_code, response.json()

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(send, deliveries))


def test_concurrent_deliveries_make_one_ticket_each_with_gap_free_numbers(app, database_url, api_account):
    request_ids = [str(uuid.uuid4()) for _ in range(60)]
    deliveries = deliveries_for(request_ids)
    with LiveServer(database_url, workers=2) as server:
        answers = send_all(server.url, deliveries)
    assert [status for status, _ in answers] == [200] * len(deliveries)
    assert_one_ticket_each(request_ids, deliveries)


def assert_one_ticket_each(request_ids, deliveries):
    numbers = sorted(task.number for task in Task.select())
    assert numbers == [f"INC{10001 + i:07d}" for i in range(len(request_ids))]
    assert Task.select().count() == len(request_ids)
    jit_ids = [row.request_id for model in (AdminTicket, ApplicationAccessTicket) for row in model.select()]
    assert sorted(jit_ids) == sorted(request_ids)
    assert IncomingRequest.select().count() == len(deliveries)
    assert IncomingRequest.select().where(IncomingRequest.status == contract.INCOMING_DUPLICATE).count() == len(
        request_ids)
    # Every update was applied, whether it came before or after its ticket.
    assert IncomingRequest.select().where(IncomingRequest.status == contract.INCOMING_RECEIVED).count() == 0
    finalized = sum(model.select().where(model.decision_final).count()
                    for model in (AdminTicket, ApplicationAccessTicket))
    assert finalized == len([i for i in range(len(request_ids)) if i % 5 == 0])
