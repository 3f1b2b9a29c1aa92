"""Alerts pushed to ops by e-mail (admins with an address) and the chat webhook, once per occurrence."""
import json
from datetime import timedelta

import pytest
import responses

from app import contract
from app.audit.models import AuditEntry
from app.configuration import update_configuration
from app.epm.tokens import clear_token_cache
from app.jobs.registry import JOBS, run_job
from app.models import Decision, IncomingRequest, utcnow
from app.notify.models import KIND_DELIVERY_FAILED, STATUS_SENT, STATUS_SKIPPED, Notification
from app.settings import Settings, SettingsError

EPM = "https://acme-services.pm.beyondtrustcloud.com"
TOKEN_URL = f"{EPM}/oauth/connect/token"
APPLICATION_URL = f"{EPM}/management-api/v2/AuthorizationRequest/notification"
LIST_URL = f"{EPM}{contract.EPM_APPLICATION_LIST_PATH}"
HOOK = "https://hooks.slack.com/services/T000/B000/secret-token"
SECRET = "broker-secret-5f2a"
API = "/api/x_bets_pmc_jit"
TOKEN_OK = {"access_token": "token-1", "token_type": "Bearer", "expires_in": 3600}


@pytest.fixture
def ops(app, mail_configured, make_approver):
    """EPM and the chat webhook faked with `responses`, e-mail to a local SMTP server, one admin with an
    address (ops) and one approver with an address (not ops)."""
    clear_token_cache()
    update_configuration({"pmc_host": "acme-services.pm.beyondtrustcloud.com", "client_id": "broker-client",
                          "client_secret": SECRET, "notify_webhook_url": HOOK})
    make_approver("ops-admin", "ops@example.com", role="admin")
    make_approver("approver-anna", "anna@example.com", role="user")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(HOOK, body="ok")
        yield mock
    clear_token_cache()


def alert_mails(smtp_server):
    return [(recipients, message) for recipients, message in smtp_server.handler.received()
            if "Alert:" in message["Subject"]]


def alert_posts(mock):
    """The alerts the chat webhook accepted."""
    return [json.loads(call.request.body)["text"] for call in mock.calls
            if call.request.url == HOOK and call.response.status_code == 200
            and "Alert:" in json.loads(call.request.body)["text"]]


def approve(client, approver_auth, number):
    return client.post(f"{API}/tickets/{number}/decision", headers=approver_auth,
                       json={"decision": "Approved", "reason": "ok", "duration_unit": "once"})


def run(name):
    outcome = run_job(JOBS[name])
    assert outcome.error is None
    return outcome.result


def test_a_decision_epm_refuses_for_good_alerts_admins_once_by_email_and_webhook(
        ops, smtp_server, client, approver_auth, make_ticket):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=403, body="forbidden")
    task = make_ticket()
    approve(client, approver_auth, task.number)
    assert Decision.get().status == contract.DELIVERY_FAILED

    run("send_notifications")
    run("send_notifications")

    [(recipients, message)] = alert_mails(smtp_server)
    assert recipients == ["ops@example.com"], "admins with an address, not approvers"
    body = message.get_content()
    assert task.number in message["Subject"] and "could not be delivered to EPM" in message["Subject"]
    assert "HTTP 403" in body and "JIT — Full Access" in body and "decide the ticket again" in body
    [post] = alert_posts(ops)
    assert task.number in post and "HTTP 403" in post
    assert SECRET not in body + post
    assert {row.status for row in Notification.select().where(Notification.kind == KIND_DELIVERY_FAILED)} \
        == {STATUS_SENT}


def test_a_second_failed_decision_on_the_ticket_is_a_new_alert(ops, smtp_server, client, approver_auth,
                                                               make_ticket):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=403, body="forbidden")
    task = make_ticket()
    approve(client, approver_auth, task.number)
    run("send_notifications")
    approve(client, approver_auth, task.number)
    assert Decision.select().where(Decision.status == contract.DELIVERY_FAILED).count() == 2

    run("send_notifications")

    assert len(alert_mails(smtp_server)) == 2
    assert len(alert_posts(ops)) == 2


def test_without_an_admin_address_the_email_alert_is_skipped_and_the_webhook_still_posts(
        app, mail_configured, client, approver_auth, make_ticket):
    update_configuration({"pmc_host": "acme-services.pm.beyondtrustcloud.com", "client_id": "broker-client",
                          "client_secret": SECRET, "notify_webhook_url": HOOK})
    clear_token_cache()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(HOOK, body="ok")
        mock.post(TOKEN_URL, json=TOKEN_OK)
        mock.post(APPLICATION_URL, status=404, body="no such request")
        approve(client, approver_auth, make_ticket().number)
        run("send_notifications")
        assert len(alert_posts(mock)) == 1
    email = Notification.get(Notification.kind == KIND_DELIVERY_FAILED, Notification.channel == "email")
    assert (email.status, email.last_error) == (STATUS_SKIPPED, "no active admin has an e-mail address")
    clear_token_cache()


def test_epm_refusing_the_token_alerts_once_per_streak_of_refusals(ops, smtp_server, client, approver_auth,
                                                                   make_ticket, runner):
    ops.post(TOKEN_URL, status=401, json={"error": "invalid_client", "error_description": f"bad secret {SECRET}"})
    approve(client, approver_auth, make_ticket().number)  # a delivery, refused
    assert runner.invoke(args=["test-connection"]).exit_code == 1  # Test Connection, refused again
    assert Decision.get().status == contract.DELIVERY_PENDING

    assert "epm-token-refused" in run("ops_alerts")
    assert run("ops_alerts") is None
    assert runner.invoke(args=["test-connection"]).exit_code == 1
    assert run("ops_alerts") is None, "the same streak"

    [(recipients, message)] = alert_mails(smtp_server)
    assert recipients == ["ops@example.com"]
    body = message.get_content()
    assert "refused the broker's client credentials" in body and "invalid_client" in body
    assert "Test Connection" in body and "client secret" in body
    assert SECRET not in body
    [post] = alert_posts(ops)
    assert SECRET not in post

    # EPM accepts the credentials again: the streak ends; the next refusal is a new one.
    ops.replace(responses.POST, TOKEN_URL, json=TOKEN_OK)
    ops.get(LIST_URL, json={"data": [], "pageCount": 0, "totalRecordCount": 0})
    clear_token_cache()
    assert runner.invoke(args=["test-connection"]).exit_code == 0
    assert run("ops_alerts") is None
    ops.replace(responses.GET, LIST_URL, status=401)  # the token in use expires, a new one is refused
    ops.replace(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_scope"})
    assert runner.invoke(args=["test-connection"]).exit_code == 1
    assert "epm-token-refused" in run("ops_alerts")
    assert len(alert_mails(smtp_server)) == 2
    assert "invalid_scope" in alert_mails(smtp_server)[1][1].get_content()


def test_an_api_call_refused_even_with_a_new_token_is_a_refusal(ops, smtp_server, runner):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.get(LIST_URL, status=401)
    assert runner.invoke(args=["test-connection"]).exit_code == 1
    assert "epm-token-refused" in run("ops_alerts")
    [(_recipients, message)] = alert_mails(smtp_server)
    assert "HTTP 401" in message.get_content()


def test_an_unreachable_epm_is_no_token_alert(ops, smtp_server, runner):
    ops.post(TOKEN_URL, status=503)
    assert runner.invoke(args=["test-connection"]).exit_code == 1
    assert run("ops_alerts") is None
    assert alert_mails(smtp_server) == []


def test_a_channel_that_failed_is_tried_again_and_the_other_is_not_resent(ops, smtp_server, runner):
    ops.post(TOKEN_URL, status=401)
    ops.replace(responses.POST, HOOK, status=500, body="down")
    runner.invoke(args=["test-connection"])
    run("ops_alerts")
    assert len(alert_mails(smtp_server)) == 1 and alert_posts(ops) == []

    ops.replace(responses.POST, HOOK, body="ok")
    run("ops_alerts")
    run("ops_alerts")

    assert len(alert_mails(smtp_server)) == 1
    assert len(alert_posts(ops)) == 1
    recorded = AuditEntry.select().where(AuditEntry.action == "ops_alert")
    assert sorted(entry.detail["channel"] for entry in recorded) == ["email", "webhook"]


def test_no_webhook_for_the_configured_hours_alerts_once_per_quiet_period(ops, smtp_server, make_ticket):
    make_ticket()
    assert run("ops_alerts") is None
    IncomingRequest.update(received_at=utcnow() - timedelta(hours=25)).execute()

    assert "no-webhook" in run("ops_alerts")
    assert run("ops_alerts") is None

    [(recipients, message)] = alert_mails(smtp_server)
    assert recipients == ["ops@example.com"]
    assert "no webhook from EPM for 24 hours" in message["Subject"]
    body = message.get_content()
    assert "webhook URL" in body and "no_webhook_hours" in body
    assert len(alert_posts(ops)) == 1

    make_ticket()  # EPM speaks again: the quiet period is over
    assert run("ops_alerts") is None
    (IncomingRequest.update(received_at=utcnow() - timedelta(hours=24, minutes=5))
     .where(IncomingRequest.received_at > utcnow() - timedelta(hours=1)).execute())
    assert "no-webhook" in run("ops_alerts")
    assert len(alert_mails(smtp_server)) == 2


def test_a_configured_broker_that_never_received_a_webhook_is_alerted(ops, smtp_server):
    from app.models import Configuration

    Configuration.update(updated_at=utcnow() - timedelta(hours=48)).execute()
    assert "no-webhook:never" in run("ops_alerts")
    assert "None has arrived since the EPM connection was saved" in alert_mails(smtp_server)[0][1].get_content()


@pytest.mark.parametrize("app_settings", [{"no_webhook_hours": 0}])
def test_no_webhook_hours_0_turns_the_alert_off(ops, smtp_server, make_ticket):
    make_ticket()
    IncomingRequest.update(received_at=utcnow() - timedelta(days=30)).execute()
    assert run("ops_alerts") is None
    assert alert_mails(smtp_server) == []


def test_no_webhook_hours_is_read_from_the_alerts_section(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[alerts]\nno_webhook_hours = 6\n")
    assert Settings.load(environ={"JITBROKER_CONFIG": str(config)}).no_webhook_hours == 6
    config.write_text("[alerts]\nno_webhook_hours = -1\n")
    with pytest.raises(SettingsError, match="no_webhook_hours"):
        Settings.load(environ={"JITBROKER_CONFIG": str(config)})
    assert Settings().no_webhook_hours == 24


def test_a_secret_regenerated_in_epm_alerts_once_from_test_connection_and_reconciliation(
        fake_epm, mail_configured, make_approver, as_admin):
    """End to end with the loopback fake EPM: the web page's Test Connection and the reconcile job meet the
    same refusal streak."""
    make_approver("ops-admin", "ops@example.com", role="admin")
    assert as_admin.post("/admin/configuration/test").status_code == 302
    assert run("ops_alerts") is None, "EPM accepted the credentials"

    fake_epm.rotate_secret("regenerated-in-epm")
    as_admin.post("/admin/configuration/test")
    assert run_job(JOBS["reconcile"]).error is not None
    assert "epm-token-refused" in run("ops_alerts")
    assert run("ops_alerts") is None

    [(recipients, message)] = alert_mails(mail_configured)
    assert recipients == ["ops@example.com"]
    assert "Test Connection" in message.get_content()
    assert fake_epm.client_secret not in message.get_content() and "broker-secret" not in message.get_content()


def _retry_now():
    Decision.update(next_attempt_at=utcnow() - timedelta(seconds=1)).execute()
    run("deliver_outbox")


def test_decisions_undelivered_after_every_retry_alert_ops_once_per_outage(ops, smtp_server, client, approver_auth,
                                                                           make_ticket, app):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=503, body="Service Unavailable")
    tasks = [make_ticket(), make_ticket()]
    for task in tasks:
        approve(client, approver_auth, task.number)
    steps = len(app.extensions["settings"].retry_delays)
    while Decision.select().where(Decision.attempts < steps).exists():
        assert run("ops_alerts") is None, "not before the retry schedule ran out"
        _retry_now()

    run("ops_alerts")
    run("ops_alerts")
    _retry_now()  # still down: the broker goes on retrying, and the outage is not alerted twice
    run("ops_alerts")

    [(recipients, message)] = alert_mails(smtp_server)
    assert recipients == ["ops@example.com"]
    assert message["Subject"].endswith(f"2 decision(s) not delivered to EPM after {steps} attempts")
    body = message.get_content()
    assert all(task.number in body for task in tasks) and "HTTP 503" in body and "outbox retry-all" in body
    [post] = alert_posts(ops)
    assert tasks[0].number in post
    assert {decision.status for decision in Decision.select()} == {contract.DELIVERY_PENDING}


def test_a_409_saying_already_decided_whose_record_stays_pending_fails_after_every_retry_with_its_alert(
        ops, smtp_server, client, approver_auth, make_ticket, app):
    # EPM says the request was already decided, its record keeps showing it pending: retried while the record may
    # lag the answer, then given up where a 5xx outage is alerted, as a decision EPM refused for good.
    task = make_ticket()
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=409, json={"message": f"Request {task.request_id} has already been decided"})
    ops.get(f"{LIST_URL}/{task.request_id}", json={"id": task.request_id, "requestInfo": {}, "serviceTicket": {},
                                                   "accessDecision": {"status": "Pending"}})
    approve(client, approver_auth, task.number)
    steps = len(app.extensions["settings"].retry_delays)
    while Decision.select().where(Decision.attempts < steps).exists():
        assert Decision.get().status == contract.DELIVERY_PENDING
        run("send_notifications")
        assert not alert_mails(smtp_server), "not before the retry schedule ran out"
        _retry_now()

    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.last_status) == (contract.DELIVERY_FAILED, steps, 409)
    assert decision.last_error.endswith(f"the record may lag EPM's answer. It still showed the request undecided "
                                        f"after {steps} attempts (every step of [epm] retry_schedule): given up")
    run("send_notifications")
    run("ops_alerts")
    [(recipients, message)] = alert_mails(smtp_server)
    assert recipients == ["ops@example.com"]
    assert task.number in message["Subject"] and "could not be delivered to EPM" in message["Subject"]
    body = message.get_content()
    assert "already been decided" in body and f"after {steps} attempt(s)" in body
    assert "decide the ticket again" in body
    _retry_now()
    assert Decision.get().attempts == steps, "not sent again"


# The undelivered alert speaks of an outage: decisions EPM did not answer (unreachable, 5xx) at every step of the
# schedule. A 409 whose record lags is EPM answering; its retries are bounded and fail with their own alert.

def _epm_answers_already_decided_with_a_pending_record(mock, task):
    mock.upsert("POST", APPLICATION_URL, status=409,
                json={"message": f"Request {task.request_id} has already been decided"})
    mock.get(f"{LIST_URL}/{task.request_id}", json={"id": task.request_id, "requestInfo": {}, "serviceTicket": {},
                                                    "accessDecision": {"status": "Pending"}})


def test_a_decision_retried_for_a_lagging_record_after_a_short_outage_is_no_outage_alert(
        ops, smtp_server, client, approver_auth, make_ticket, app):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=503, body="Service Unavailable")
    task = make_ticket()
    approve(client, approver_auth, task.number)  # one attempt in the outage
    _epm_answers_already_decided_with_a_pending_record(ops, task)
    steps = len(app.extensions["settings"].retry_delays)
    while Decision.select().where(Decision.attempts < steps).exists():
        _retry_now()

    run("ops_alerts")

    decision = Decision.get()
    assert (decision.status, decision.attempts, decision.unresolved_conflicts) == (
        contract.DELIVERY_PENDING, steps, steps - 1)
    assert alert_mails(smtp_server) == [] and alert_posts(ops) == []


def test_a_decision_retried_for_a_lagging_record_once_the_outage_ended_is_no_outage_alert(
        ops, smtp_server, client, approver_auth, make_ticket, app):
    ops.post(TOKEN_URL, json=TOKEN_OK)
    ops.post(APPLICATION_URL, status=503, body="Service Unavailable")
    task = make_ticket()
    approve(client, approver_auth, task.number)
    steps = len(app.extensions["settings"].retry_delays)
    while Decision.select().where(Decision.attempts < steps).exists():
        _retry_now()
    _epm_answers_already_decided_with_a_pending_record(ops, task)  # EPM is back: its record lags its answer
    _retry_now()

    run("ops_alerts")

    decision = Decision.get()
    assert (decision.status, decision.unresolved_conflicts, decision.last_status) == (
        contract.DELIVERY_PENDING, 1, 409)
    assert alert_mails(smtp_server) == [] and alert_posts(ops) == []


# The outage meets the decision (EPM's answer to it is a 503), or the read of EPM's record after its 409 (the
# latest answer is that read's 503, which the decision stores as any outage attempt does).
OUTAGES = {
    "decision": (lambda mock, task: mock.replace("POST", APPLICATION_URL, status=503, body="Service Unavailable"),
                 "The latest answer: "),
    "record read": (lambda mock, task: mock.replace("GET", f"{LIST_URL}/{task.request_id}", status=503,
                                                    body="Service Unavailable"),
                    "The latest answer: EPM's record of request"),
}


@pytest.mark.parametrize("outage", OUTAGES)
def test_an_outage_after_retries_for_a_lagging_record_is_alerted_once_it_lasted_the_whole_schedule(
        outage, ops, smtp_server, client, approver_auth, make_ticket, app):
    begin_outage, latest_answer = OUTAGES[outage]
    ops.post(TOKEN_URL, json=TOKEN_OK)
    task = make_ticket()
    _epm_answers_already_decided_with_a_pending_record(ops, task)
    approve(client, approver_auth, task.number)
    _retry_now()  # two 409s: the record lags
    begin_outage(ops, task)
    steps = len(app.extensions["settings"].retry_delays)
    while Decision.select().where(Decision.attempts < steps + 2).exists():
        assert run("ops_alerts") is None, "not before the outage ran through the retry schedule"
        _retry_now()

    run("ops_alerts")

    decision = Decision.get()
    assert (decision.status, decision.unresolved_conflicts, decision.last_status) == (
        contract.DELIVERY_PENDING, 2, 503)
    [(_, message)] = alert_mails(smtp_server)
    assert message["Subject"].endswith(f"1 decision(s) not delivered to EPM after {steps} attempts")
    body = message.get_content()
    assert task.number in body and latest_answer in body and "HTTP 503" in body
