"""Beyond one machine: two web instances (two gunicorn masters, as two hosts behind a load
balancer) and one scheduler share one PostgreSQL database (docs/deployment.md)."""
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app import contract
from app.epm.fake import FakeEpm
from app.epm.tokens import clear_token_cache
from app.models import Configuration, Decision, IncomingRequest, Task
from tests import factories
from tests.live import ROOT, LiveServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

WEBHOOK = contract.WEBHOOK_PATH


@pytest.fixture
def scheduler(database_url, broker_config):
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app:create_app()", "scheduler"], cwd=ROOT,
                               env={**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key",
                                    "JITBROKER_CONFIG": str(broker_config)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    yield process
    process.terminate()
    process.wait(timeout=15)


@pytest.fixture
def broker_config(tmp_path):
    # Retries a second apart, so decisions EPM refused are delivered within the test.
    path = tmp_path / "broker.toml"
    path.write_text('[epm]\nretry_schedule = "1"\ntimeout_seconds = 2\n')
    return path


@pytest.fixture
def two_instances(app, database_url, api_account, broker_config):
    factories.account("alice", "user")
    factories.account("bob", "user")
    env = {"JITBROKER_CONFIG": str(broker_config)}
    with LiveServer(database_url, env=env) as first, LiveServer(database_url, env=env) as second:
        yield first, second


def _post_to_both(instances, body):
    with ThreadPoolExecutor(len(instances)) as pool:
        answers = pool.map(lambda server: requests.post(server.url + WEBHOOK, json=body, timeout=30,
                                                        auth=("epm", factories.PASSWORD)), instances)
    return [answer.status_code for answer in answers]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_same_deliveries_on_both_instances_make_each_ticket_once(two_instances):
    created = [factories.application_request() for _ in range(8)] + [factories.admin_request() for _ in range(8)]
    updates = [factories.application_decision(body["RequestId"]) for body in created[:8]]
    with ThreadPoolExecutor(8) as pool:
        statuses = [status for answer in pool.map(lambda body: _post_to_both(two_instances, body), created + updates)
                    for status in answer]
    assert statuses == [200] * 2 * len(created + updates)
    tasks = list(Task.select())
    assert sorted(task.request_id for task in tasks) == sorted(body["RequestId"] for body in created)
    numbers = sorted(int(re.sub(r"\D", "", task.number)) for task in tasks)
    assert numbers == list(range(numbers[0], numbers[0] + len(created)))
    assert IncomingRequest.select().count() == len(statuses)
    assert all(task.jit_request.decision_final for task in tasks if task.request_id in
               {body["RequestId"] for body in updates})


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_decisions_taken_on_both_instances_reach_epm_exactly_once(two_instances, scheduler):
    first, second = two_instances
    with FakeEpm(broker_url=first.url, webhook_user="epm", webhook_password=factories.PASSWORD,
                 auto_finalize=True, strict=True) as fake:
        Configuration.default()
        Configuration.update(pmc_host=fake.url, client_id=fake.client_id, client_secret=fake.client_secret).execute()
        clear_token_cache()
        request_ids = [fake.fire_application_request() for _ in range(6)]
        numbers = [Task.get(Task.request_id == request_id).number for request_id in request_ids]
        fake.fail_next(3, 503)  # EPM is down for the first three calls: the scheduler must deliver those

        def decide(args):
            server, user, number = args
            return requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{number}/decision", timeout=30,
                                 auth=(user, factories.PASSWORD),
                                 json={"decision": "Approved", "reason": f"{user} approves", "duration_unit": "once"})

        answers = []
        for number in numbers:
            with ThreadPoolExecutor(2) as pool:
                answers.append(sorted(r.status_code for r in pool.map(decide, [(first, "alice", number),
                                                                               (second, "bob", number)])))
        assert all(pair in ([201, 409], [202, 409]) for pair in answers), answers
        wait_until(lambda: Decision.select().where(Decision.status == contract.DELIVERY_DELIVERED).count()
                   == len(numbers), timeout=60, message="every decision to be delivered")
        assert fake.wait_for_finalizations(30)
        assert fake.applied_count == len(numbers)
        assert all(fake.decision_for(request_id) is not None for request_id in request_ids)
        wait_until(lambda: all(Task.get(Task.number == n).jit_request.decision_final for n in numbers), timeout=30,
                   message="every ticket to show EPM's final decision")
        clear_token_cache()
