"""Beyond one machine: two web instances and one scheduler sharing one PostgreSQL database.

Two gunicorn masters on different ports stand for two hosts behind a load balancer.
Both receive the same deliveries at once (EPM retrying to another host), then
approvers decide the same tickets on both while EPM fails a share of the first
attempts, which only the scheduler's retries can deliver. Afterwards: no duplicate
tickets, gap-free numbers, every 2xx stored, and each decision applied by EPM once.
"""
import secrets
import sys
import threading
import time
from pathlib import Path

from app import contract
from app.epm.fake import FakeEpm
from app.models import Decision
from bench import broker, decisions, intake, servers, wrk


def _load_both(instances, seconds):
    """wrk against every instance at once with the same RequestIds; returns their results."""
    tag = secrets.token_hex(4)
    results = [None] * len(instances)

    def load(index, server):
        results[index] = intake.load(server.url, broker.API_USER, broker.PASSWORD, seconds,
                                     connections=wrk.CONNECTIONS // len(instances), tag=tag)

    threads = [threading.Thread(target=load, args=item) for item in enumerate(instances)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _decide_on_both(instances, numbers):
    """Two approvers decide each ticket at the same moment, one on each instance."""
    answers = {}

    def decide(server, number, who):
        answers[(number, who)] = decisions.approve(server.url, number, reason=f"approver on {who}")[0]

    for number in numbers:
        threads = [threading.Thread(target=decide, args=(server, number, index))
                   for index, server in enumerate(instances)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return answers


def _wait_for_delivery(expected, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        delivered = Decision.select().where(Decision.status == contract.DELIVERY_DELIVERED).count()
        if delivered >= expected:
            return delivered
        time.sleep(0.5)
    return Decision.select().where(Decision.status == contract.DELIVERY_DELIVERED).count()


def run(options, decided=None):
    decided = decided or (20 if options.quick else 60)
    config = Path(options.scratch) / "cluster.toml"
    # Retries a second apart, so the scheduler's share is delivered within the run.
    config.write_text('[epm]\nretry_schedule = "1"\ntimeout_seconds = 2\n')
    with servers.PostgresDatabase("cluster") as db:
        broker.prepare(db.url)
        env = broker.server_env(db.url, JITBROKER_CONFIG=str(config))
        with servers.Gunicorn("app:create_app()", env=env) as first, \
                servers.Gunicorn("app:create_app()", env=env) as second, \
                servers.Process([sys.executable, "-m", "flask", "--app", "app:create_app()", "scheduler"], env=env):
            instances = [first, second]
            _load_both(instances, 2)  # warm-up: each worker's first password check, connections
            loads = _load_both(instances, options.seconds)
            with broker.broker_app(db.url):
                rows = intake.stored_rows()
                with FakeEpm(broker_url=first.url, webhook_user=broker.API_USER, webhook_password=broker.PASSWORD,
                             auto_finalize=True) as fake:
                    decisions.configure_epm(fake)
                    numbers = decisions.fire_tickets(fake, decided)
                    # EPM is down for the first quarter of the calls: those decisions wait for the scheduler.
                    fake.fail_next(decided // 4, 503)
                    answers = _decide_on_both(instances, numbers)
                    delivered = _wait_for_delivery(decided, 60)
                    fake.wait_for_finalizations(30)
                    epm = {"applied": fake.applied_count, "received": fake.received_count,
                           "token_fetches": fake.token_requests}
            rss = max(filter(None, (server.worker_peak_rss_mb() for server in instances)), default=None)
    answered_2xx = sum(load["ok"] for load in loads)  # the warm-up's rows only add to the count below
    statuses = {}
    for status in answers.values():
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "instances": len(instances),
        "intake": {
            "requests_per_second": round(sum(load["requests_per_second"] for load in loads), 1),
            "per_instance": loads,
            "non_2xx": sum(load["non_2xx"] for load in loads),
            "rows": rows,
            "every_2xx_stored": rows["incoming_requests"] >= answered_2xx,
            "no_duplicate_tickets": rows["duplicate_request_ids"] == 0,
            "numbers_gap_free": rows["numbers_gap_free"],
        },
        "decisions": {
            "tickets_decided": decided,
            "answers": statuses,
            "delivered": delivered,
            "epm": epm,
            "exactly_once": epm["applied"] == decided and delivered == decided,
        },
        "worker_peak_rss_mb": rss,
    }
