"""The decision round trip: an approver's POST until EPM (the fake, on loopback) has acknowledged.

Tickets arrive through the real webhook from the fake EPM; each is then approved
through the JSON API, one after another as approvers work, and timed until the 201
that means EPM acknowledged it. The fake counts the token requests it answered and
sends EPM's update event back for every applied decision, as EPM does.
"""
import statistics
import time

import requests

from app.epm.fake import FakeEpm
from app.models import Configuration, Task
from bench import broker

DECISION_PATH = "/api/x_bets_pmc_jit/tickets/{number}/decision"


def configure_epm(fake):
    Configuration.default()
    Configuration.update(pmc_host=fake.url, client_id=fake.client_id, client_secret=fake.client_secret).execute()


def fire_tickets(fake, count):
    """`count` Application Access requests through the broker's webhook; returns their ticket numbers."""
    request_ids = [fake.fire_application_request() for _ in range(count)]
    by_request = dict(Task.select(Task.request_id, Task.number).tuples())
    return [by_request[request_id] for request_id in request_ids]


def approve(url, number, reason="bench approval"):
    started = time.perf_counter()
    response = requests.post(url + DECISION_PATH.format(number=number), auth=(broker.APPROVER, broker.PASSWORD),
                             json={"decision": "Approved", "reason": reason, "duration_unit": "hours",
                                   "duration_value": 1}, timeout=30)
    return response.status_code, (time.perf_counter() - started) * 1000


def percentile(values, fraction):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))], 2)


def round_trips(server, count):
    """Fire `count` tickets, approve each; returns latency, status and token numbers."""
    with FakeEpm(broker_url=server.url, webhook_user=broker.API_USER, webhook_password=broker.PASSWORD,
                 auto_finalize=True) as fake:
        configure_epm(fake)
        numbers = fire_tickets(fake, count)
        latencies, statuses = [], {}
        for number in numbers:
            status, milliseconds = approve(server.url, number)
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(milliseconds)
        finalized = fake.wait_for_finalizations(30)
        return {
            "decisions": count,
            "statuses": statuses,
            "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95),
                           "mean": round(statistics.fmean(latencies), 2), "max": round(max(latencies), 2)},
            "token_fetches": fake.token_requests,
            "epm_applied": fake.applied_count,
            "epm_received": fake.received_count,
            "update_events_sent": finalized and not fake.finalize_errors,
            "sequential": True,
        }
