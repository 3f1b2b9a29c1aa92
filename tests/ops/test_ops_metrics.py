"""`GET /metrics`: counts read from the database at scrape time, so every worker tells the same story."""
import logging
from datetime import timedelta

import prometheus_client
import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families

from app import contract
from app.epm.tokens import clear_token_cache
from app.models import Configuration, Decision, IncomingRequest, Task, utcnow
from app.logs import store as log_store
from app.logs.models import OutboundCall
from app.ops import replay as replays
from tests import factories
from tests.conftest import basic_auth

EPM = "https://acme-services.pm.beyondtrustcloud.com"


def scrape(client):
    answer = client.get("/metrics")
    assert answer.status_code == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True)) for sample in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def make_ticket(deliver):
    answer = deliver(factories.application_request())
    return Task.get(Task.number == answer.json["result"]["ticket"])


def decide(client, ticket, auth):
    return client.post(f"/api/x_bets_pmc_jit/tickets/{ticket.number}/decision", headers=auth,
                       json={"decision": "Approved", "reason": "Patch Tuesday", "duration_unit": "once"})


@pytest.fixture
def epm(app):
    """EPM answering the token and decision calls with 200."""
    clear_token_cache()
    Configuration.default()
    Configuration.update(pmc_host="acme-services.pm.beyondtrustcloud.com", client_id="broker-client",
                         client_secret="broker-secret").execute()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(f"{EPM}/oauth/connect/token", json={"access_token": "token-1", "token_type": "Bearer",
                                                      "expires_in": 3600})
        mock.post(f"{EPM}/management-api/v2/AuthorizationRequest/notification", json={})
        yield mock
    clear_token_cache()


def test_metrics_need_no_sign_in_and_use_the_prometheus_text_format(client, app):
    answer = client.get("/metrics")

    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    assert "# TYPE jitbroker_webhook_deliveries_total counter" in answer.get_data(as_text=True)


def test_a_delivered_webhook_moves_its_counter_and_its_status_gauge(client, deliver):
    created = factories.application_request()
    before = scrape(client)

    deliver(created)
    deliver(created)
    deliver("{not json")
    after = scrape(client)

    counter, gauge = "jitbroker_webhook_deliveries_total", "jitbroker_webhook_deliveries_by_status"
    event = "URM_Native_Ticket_Created"
    assert value(before, counter, event_type=event) == 0
    assert value(after, counter, event_type=event) == 2
    assert value(after, counter, event_type="unknown") == 1
    assert value(after, gauge, event_type=event, status="processed") == 1
    assert value(after, gauge, event_type=event, status="duplicate") == 1
    assert value(after, gauge, event_type="unknown", status="error") == 1


def counter_samples(client):
    """Every sample of every counter family, by name and labels."""
    answer = client.get("/metrics").get_data(as_text=True)
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer) if family.type in ("counter", "histogram")
            for sample in family.samples}


def decreased(before, after):
    return {key: (was, after.get(key, 0.0)) for key, was in before.items() if after.get(key, 0.0) < was}


def test_no_counter_goes_down_when_a_waiting_update_is_applied(client, deliver):
    request_id = "6b1f3a52-0000-4e0b-8a57-2f0c3d9e4a99"
    for waiting in (request_id, "6b1f3a52-0000-4e0b-8a57-2f0c3d9e4a98"):  # two updates that outran their tickets
        assert deliver(factories.application_decision(waiting)).json["result"]["status"] == "received"
    before = counter_samples(client)

    assert deliver(factories.application_request(request_id)).status_code == 200
    after = scrape(client)

    assert decreased(before, counter_samples(client)) == {}
    gauge, event = "jitbroker_webhook_deliveries_by_status", contract.URM_DECISION_UPDATE.name
    assert (value(after, gauge, event_type=event, status="received"),
            value(after, gauge, event_type=event, status="processed")) == (1, 1)


def test_no_counter_goes_down_when_an_error_delivery_is_replayed(client, deliver, admin, monkeypatch):
    with monkeypatch.context() as unknown:  # two deliveries refused while their event type was unknown
        unknown.delitem(contract.EVENT_TYPES, contract.ADMIN_TICKET_CREATED.name)
        assert deliver(factories.admin_request()).status_code == 400
        assert deliver(factories.admin_request()).status_code == 400
    before = counter_samples(client)

    first = IncomingRequest.select().order_by(IncomingRequest.id).first()
    assert replays.replay(first.sys_id, admin).result == replays.CREATED
    after = scrape(client)

    assert decreased(before, counter_samples(client)) == {}
    gauge, event = "jitbroker_webhook_deliveries_by_status", contract.ADMIN_TICKET_CREATED.name
    assert (value(after, gauge, event_type=event, status="error"),
            value(after, gauge, event_type=event, status="processed")) == (1, 1)


def test_an_event_type_nobody_defined_is_counted_as_unknown(client, deliver):
    deliver({"EventType": "made-up-event-" + "x" * 50, "RequestId": "r-1"})

    samples = scrape(client)
    names = {dict(labels).get("event_type") for (name, labels) in samples
             if name == "jitbroker_webhook_deliveries_total"}
    assert names == {"unknown"}


def test_a_waiting_decision_deepens_the_outbox_until_epm_takes_it(client, deliver, approver_auth):
    ticket = make_ticket(deliver)
    assert scrape(client)[("jitbroker_outbox_depth", ())] == 0

    assert decide(client, ticket, approver_auth).status_code == 202  # no EPM connection yet: it waits
    Decision.update(decided_at=utcnow() - timedelta(seconds=90)).execute()
    waiting = scrape(client)

    assert waiting[("jitbroker_outbox_depth", ())] == 1
    assert waiting[("jitbroker_oldest_pending_decision_age_seconds", ())] >= 90
    assert value(waiting, "jitbroker_decision_deliveries_total", outcome="delivered") == 0


def test_a_delivered_decision_leaves_the_outbox_and_counts_its_epm_calls(client, deliver, approver_auth, epm):
    ticket = make_ticket(deliver)

    assert decide(client, ticket, approver_auth).status_code == 201
    samples = scrape(client)

    assert samples[("jitbroker_outbox_depth", ())] == 0
    assert samples[("jitbroker_oldest_pending_decision_age_seconds", ())] == 0
    assert value(samples, "jitbroker_decision_deliveries_total", outcome="delivered") == 1
    assert value(samples, "jitbroker_epm_calls_total", call="application decision", status="2xx") == 1
    assert value(samples, "jitbroker_epm_call_duration_seconds_count", call="application decision") == 1
    assert value(samples, "jitbroker_epm_call_duration_seconds_count", call="token") == 1


def test_epm_latency_falls_into_cumulative_buckets(client, app):
    for duration_ms, status in ((40, 200), (300, 200), (300, 503), (12_000, None)):
        OutboundCall.create(method="POST", url=f"{EPM}/x", path="/x", status=status, duration_ms=duration_ms,
                            attempt=1, what="admin decision")

    samples = scrape(client)

    def bucket(le):
        return value(samples, "jitbroker_epm_call_duration_seconds_bucket", call="admin decision", le=le)

    assert (bucket("0.05"), bucket("0.25"), bucket("0.5"), bucket("10.0"), bucket("30.0"), bucket("+Inf")) == (
        1, 1, 3, 3, 4, 4)
    assert value(samples, "jitbroker_epm_call_duration_seconds_sum", call="admin decision") == pytest.approx(12.64)
    assert value(samples, "jitbroker_epm_calls_total", call="admin decision", status="5xx") == 1
    assert value(samples, "jitbroker_epm_calls_total", call="admin decision", status="error") == 1


def test_tickets_are_counted_by_type_and_state_label(client, deliver, approver_auth):
    ticket = make_ticket(deliver)
    make_ticket(deliver)
    client.patch(f"/api/x_bets_pmc_jit/tickets/{ticket.number}", headers=approver_auth, json={"state": "On Hold"})

    samples = scrape(client)

    assert value(samples, "jitbroker_tickets", ticket_type="incident", state="New") == 1
    assert value(samples, "jitbroker_tickets", ticket_type="incident", state="On Hold") == 1


def test_refused_sign_ins_are_counted(client, web, approver):
    assert web.sign_in("jchen", password="guess-number-one").status_code == 401
    before = scrape(client)[("jitbroker_sign_in_failures_total", ())]

    assert web.sign_in("jchen", password="guess-number-two").status_code == 401

    assert scrape(client)[("jitbroker_sign_in_failures_total", ())] == before + 1


def test_refused_webhook_credentials_are_counted(client, deliver):
    before = scrape(client)[("jitbroker_webhook_auth_failures_total", ())]

    answer = client.post("/api/x_bets_pmc_jit/authorization_request_webhook_handler",
                         json=factories.application_request(), headers=basic_auth("epm", "not-the-password"))
    assert answer.status_code == 401
    log_store.flush()

    assert scrape(client)[("jitbroker_webhook_auth_failures_total", ())] == before + 1


def test_metrics_live_in_the_apps_own_registry_not_the_global_one(app):
    assert "jitbroker_outbox_depth" not in prometheus_client.generate_latest().decode()
    assert app.extensions["metrics_registry"] is not prometheus_client.REGISTRY


def test_an_approval_after_a_denial_epm_acknowledged_is_a_counted_conflict(client, deliver, approver_auth, epm,
                                                                           caplog):
    ticket = make_ticket(deliver)
    denied = client.post(f"/api/x_bets_pmc_jit/tickets/{ticket.number}/decision", headers=approver_auth,
                         json={"decision": "Denied", "reason": "Not on the change calendar"})
    assert denied.status_code == 201
    assert scrape(client)[("jitbroker_epm_decision_conflicts", (("kind", "application"),))] == 0

    with caplog.at_level(logging.WARNING):
        deliver(factories.application_decision(ticket.request_id))
        deliver(factories.application_decision(ticket.request_id))  # a resend: the same conflict, counted once
    samples = scrape(client)

    assert value(samples, "jitbroker_epm_decision_conflicts", kind="application") == 1
    assert value(samples, "jitbroker_epm_decision_conflicts", kind="admin") == 0
    [warning] = [record for record in caplog.records
                 if record.levelno == logging.WARNING and record.name == "app.tickets.service"]
    assert (f"ticket {ticket.number}: RequestId {ticket.request_id}, EPM's update says Approved, "
            "the ticket keeps Denied") in warning.getMessage()
    assert ticket.jit_request.final_decision == "Denied"
    assert Decision.select().count() == 1
    assert len([call for call in epm.calls if "notification" in call.request.url]) == 1


def test_revocations_and_early_ends_are_counted_by_outcome(client, deliver):
    for request_id, update in (("adm-r", factories.admin_revocation("adm-r")),
                               ("adm-e", factories.admin_decision("adm-e", EndTime="2026-11-20T15:25:10Z"))):
        deliver(factories.admin_request(request_id=request_id))
        deliver(factories.admin_decision(request_id))
        deliver(update)
    samples = scrape(client)

    assert value(samples, "jitbroker_epm_later_outcomes", kind="admin", outcome="Revoked") == 1
    assert value(samples, "jitbroker_epm_later_outcomes", kind="admin", outcome="Ended early") == 1
    assert value(samples, "jitbroker_epm_later_outcomes", kind="application", outcome="Changed") == 0
