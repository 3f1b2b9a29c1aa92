"""Queued intake's direct path (app/intake/direct.py): the common delivery answered before Flask.

What EPM and ops rely on: the answer is the view's, header for header; the delivery is
stored exactly as the view stores it; and everything the direct path does not take
(first credentials, refusals, an outage) still gets the view's answer and record.
"""
import gc
import json
import os
import threading
from contextlib import closing
from functools import partial
from pathlib import Path

import pytest
import peewee
from flask import request, request_started
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import Client

from app import contract
from app.db import deliveries
from app.intake.direct import DirectWebhook
from app.intake import processor
from app.models import IncomingRequest, QueuedDelivery
from tests import factories
from tests.conftest import WEBHOOK, _admin_connection, basic_auth


@pytest.fixture
def app_settings():
    return {"intake_mode": "queued"}


@pytest.fixture
def dispatched(app):
    """The requests that reached Flask's dispatch (the view), by path."""
    paths = []

    def record(_sender, **_extra):
        paths.append(request.path)

    request_started.connect(record, app)
    yield paths
    request_started.disconnect(record, app)


class ViewClient(Client):
    """A client of the Flask app behind the direct path (the view answers every delivery),
    sending what Flask's test client sends (its remote address and user agent), cookies as given."""

    def __init__(self, app):
        assert isinstance(app.wsgi_app, DirectWebhook)
        super().__init__(app.wsgi_app.view_app, app.response_class, use_cookies=False)
        self.environ_base = app.test_client().environ_base

    def open(self, *args, **kwargs):
        return super().open(*args, environ_base=self.environ_base, **kwargs)


def test_a_known_credentials_delivery_is_answered_without_flask_dispatching_it(deliver, api_account, dispatched):
    assert deliver(factories.application_request("req-direct-1")).status_code == 200
    assert dispatched == [WEBHOOK], "the first delivery pays the password check in the view"
    response = deliver(factories.application_request("req-direct-2"))
    assert response.status_code == 200
    assert dispatched == [WEBHOOK], "the second was answered before Flask's dispatch"
    assert response.json["result"]["status"] == contract.INCOMING_RECEIVED


def test_the_direct_answer_is_the_views_header_for_header(app, deliver, api_account, dispatched):
    deliver(factories.application_request("req-warm"))
    headers = {**basic_auth("epm", factories.PASSWORD), "X-Request-Id": "epm-delivery-7"}
    body = json.dumps(factories.admin_request("req-compare-1"))
    direct = app.test_client().post(WEBHOOK, data=body, content_type="application/json", headers=headers)
    body = json.dumps(factories.admin_request("req-compare-2"))
    viewed = ViewClient(app).post(WEBHOOK, data=body, content_type="application/json", headers=headers)
    assert dispatched == [WEBHOOK, WEBHOOK], "only the view client's request went through Flask"

    assert direct.status_code == viewed.status_code == 200
    assert sorted(direct.headers.items()) == sorted(viewed.headers.items())
    assert direct.headers["X-Request-Id"] == "epm-delivery-7"
    results = [json.loads(answer.get_data())["result"] for answer in (direct, viewed)]
    ids = [result.pop("incoming_request") for result in results]
    assert results[0] == results[1] == {"status": contract.INCOMING_RECEIVED, "ticket": None}
    # The same bytes but for the row's id: key order, spacing and the trailing newline.
    assert direct.get_data().replace(ids[0].encode(), ids[1].encode()) == viewed.get_data()


def test_the_direct_path_stores_the_delivery_as_the_view_does(app, deliver, api_account):
    deliver(factories.application_request("req-warm"))
    headers = {**basic_auth("epm", factories.PASSWORD), "User-Agent": "EPM-Webhook/1.0",
               "X-Forwarded-For": "10.1.2.3", "Cookie-Less": "yes", "X-Request-Id": "epm-delivery-8",
               "Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    raw = {}
    for name, client in (("direct", app.test_client()), ("viewed", ViewClient(app))):
        raw[name] = json.dumps(factories.application_request(f"req-{name}"), indent=1).encode()
        answer = client.post(WEBHOOK, data=raw[name], content_type="application/json; charset=utf-8",
                             headers=headers)
        assert answer.status_code == 200
    processor.take_in()
    stored = {row.request_id: row for row in IncomingRequest.select()}
    direct, viewed = stored["req-direct"], stored["req-viewed"]
    assert bytes(direct.raw_body) == raw["direct"] and bytes(viewed.raw_body) == raw["viewed"]
    for column in ("event_type", "status", "queued", "content_type", "headers", "source_address", "task_id",
                   "error", "processed_at"):
        assert getattr(direct, column) == getattr(viewed, column), column
    assert set(direct.headers) == {"Content-Type", "Content-Length", "User-Agent", "X-Forwarded-For", "X-Request-Id",
                                   "Traceparent"}  # every header a delivery keeps, and nothing else
    assert direct.headers["User-Agent"] == "EPM-Webhook/1.0" and "Authorization" not in direct.headers
    assert direct.received_at is not None


@pytest.mark.parametrize("change, why", [
    (lambda request: request.update(query_string="sysparm_x=1"), "a query string"),
    (lambda request: request["headers"].update(Cookie="session=x; theme=dark"), "a cookie"),
    (lambda request: request.update(content_type="text/plain"), "not JSON"),
    (lambda request: request.update(data=b'{"EventType": "URM_Native_Ticket_Created"'), "malformed JSON"),
    (lambda request: request.update(data=b'["not", "an", "object"]'), "not an object"),
    (lambda request: request.update(data=json.dumps({"EventType": "Unknown", "RequestId": "r"})), "unknown event"),
    (lambda request: request.update(data=json.dumps({**factories.application_request(), "RequestId": "%%x%%"})),
     "an unreplaced RequestId"),
    (lambda request: request["headers"].update(basic_auth("epm", "wrong password")), "a wrong password"),
])
def test_what_the_direct_path_does_not_take_gets_the_views_answer(app, deliver, api_account, dispatched, change,
                                                                   why):
    deliver(factories.application_request("req-warm"))
    sent = {"data": json.dumps(factories.application_request("req-handed-on")), "content_type": "application/json",
            "headers": basic_auth("epm", factories.PASSWORD)}
    change(sent)
    warm = IncomingRequest.select().count()
    # Without a cookie jar, which would drop the Cookie header.
    direct = app.test_client(use_cookies=False).post(WEBHOOK, **sent)
    assert dispatched == [WEBHOOK, WEBHOOK], f"{why}: handed to the view"
    after_direct = IncomingRequest.select().count()
    viewed = ViewClient(app).post(WEBHOOK, **sent)
    assert (direct.status_code, direct.get_json().keys()) == (viewed.status_code, viewed.get_json().keys()), why
    # Each of the two was stored (or refused without a row) the same way, once.
    assert IncomingRequest.select().count() - after_direct == after_direct - warm, why


def test_a_body_over_the_limit_is_refused_by_the_view_unread(app, deliver, api_account, dispatched):
    deliver(factories.application_request("req-warm"))
    limit = app.config["MAX_CONTENT_LENGTH"]
    document = {**factories.application_request("req-large"), "reason": "x" * limit}
    answer = deliver(document)
    assert answer.status_code == 413 and dispatched == [WEBHOOK, WEBHOOK]
    row = IncomingRequest.select().order_by(IncomingRequest.id.desc()).get()
    assert row.status == contract.INCOMING_ERROR and row.raw_body is None


def test_a_database_outage_gets_the_views_503_and_nothing_is_stored(app, deliver, api_account, monkeypatch):
    deliver(factories.application_request("req-warm"))
    concrete = deliveries.obj

    def unavailable(*_args, **_kwargs):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(concrete, "execute_sql", unavailable)
    answer = deliver(factories.application_request("req-outage"))
    monkeypatch.undo()
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    assert IncomingRequest.select().where(IncomingRequest.request_id == "req-outage").count() == 0


def test_a_fault_in_the_direct_path_is_logged_and_the_view_answers(deliver, api_account, dispatched, monkeypatch,
                                                                   caplog):
    from app.intake import direct

    deliver(factories.application_request("req-warm"))

    def broken(*_args, **_kwargs):
        raise RuntimeError("a bug in the direct path")

    monkeypatch.setattr(direct, "parse_json_object", broken)
    answer = deliver(factories.application_request("req-after-fault"))
    assert answer.status_code == 200 and dispatched == [WEBHOOK, WEBHOOK]
    assert QueuedDelivery.select().where(QueuedDelivery.request_id == "req-after-fault").count() == 1
    assert any("direct path failed" in record.getMessage() and record.exc_info for record in caplog.records)


def test_a_deactivated_account_is_refused_once_the_account_cache_forgets_it(app, deliver, api_account, dispatched):
    deliver(factories.application_request("req-warm"))
    api_account.active = False
    api_account.save()  # forgets this process's cached accounts, as every account change does
    assert deliver(factories.application_request("req-after")).status_code == 401
    assert IncomingRequest.select().where(IncomingRequest.request_id == "req-after").count() == 0


def test_an_approver_account_cannot_deliver_even_with_remembered_credentials(app, approver, dispatched):
    client = app.test_client()
    auth = basic_auth("jchen", factories.PASSWORD)
    # An approver's credentials verified a moment ago by the JSON API...
    assert client.get(f"{contract.API_PREFIX}/tickets", headers=auth).status_code == 200
    # ...are still refused at the webhook, which only the api role may use.
    answer = client.post(WEBHOOK, json=factories.application_request("req-approver"), headers=auth)
    assert answer.status_code == 403
    assert dispatched[-1] == WEBHOOK
    assert IncomingRequest.select().where(IncomingRequest.request_id == "req-approver").count() == 0


@pytest.mark.parametrize("app_settings", [{"intake_mode": "inline"}])
def test_inline_intake_has_no_direct_path(app):
    assert not isinstance(app.wsgi_app, DirectWebhook)


@pytest.mark.parametrize("app_settings", [{"intake_mode": "queued", "trusted_proxies": 1}])
def test_behind_a_trusted_proxy_the_direct_path_sees_the_forwarded_address_and_scheme(
        app, deliver, api_account, dispatched):
    assert isinstance(app.wsgi_app, ProxyFix) and isinstance(app.wsgi_app.app, DirectWebhook)
    headers = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    for number in (1, 2):  # the second takes the direct path
        answer = deliver(factories.application_request(f"req-proxied-{number}"), headers=headers)
        assert answer.status_code == 200
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
    assert dispatched == [WEBHOOK]
    assert {row.source_address for row in QueuedDelivery.select()} == {"203.0.113.9"}


def open_files_of(path):
    """How many descriptors of this process have `path` open (Linux's /proc)."""
    count = 0
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{descriptor}") == str(path)
        except OSError:  # closed since it was listed (the listing's own descriptor)
            pass
    return count


def test_a_thread_keeps_its_deliveries_connection_from_one_delivery_to_the_next(app, deliver, api_account):
    deliver(factories.application_request("req-warm"))
    assert not deliveries.is_closed(), "kept open past the end of the request"
    kept = deliveries.connection()
    assert deliver(factories.application_request("req-kept")).status_code == 200
    assert deliveries.connection() is kept
    assert QueuedDelivery.select().where(QueuedDelivery.request_id == "req-kept").count() == 1


def test_the_connection_a_thread_kept_closes_when_the_thread_ends(app, api_auth, database_url):
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///")).resolve()
        connections = partial(open_files_of, path)
    else:
        connections = server_connections

    def deliver_in_a_thread_of_its_own(request_id):
        def deliver():
            with app.test_client() as client:
                answer = client.post(WEBHOOK, json=factories.application_request(request_id), headers=api_auth)
                assert answer.status_code == 200
            assert not deliveries.is_closed()  # kept while the thread lives

        thread = threading.Thread(target=deliver)
        thread.start()
        thread.join(10)
        gc.collect()

    deliver_in_a_thread_of_its_own("req-warm")  # the broker's own connections, opened as needed
    before = connections()
    # As a server with a thread per request runs: each thread's connection goes with it.
    for index in range(5):
        deliver_in_a_thread_of_its_own(f"req-thread-{index}")
    assert connections() == before
    assert QueuedDelivery.select().where(QueuedDelivery.request_id.startswith("req-thread-")).count() == 5


def server_connections():
    """How many PostgreSQL backends serve the deliveries' database now."""
    with closing(_admin_connection()) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (deliveries.obj.database,))
        return cursor.fetchone()[0]


def drop_kept_connection():
    """The server ends this thread's kept deliveries connection, as a PostgreSQL restart would."""
    pid = deliveries.connection().get_backend_pid()
    with closing(_admin_connection()) as admin, admin.cursor() as cursor:
        # With a timeout (PostgreSQL 14+) it returns once the backend has exited.
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
        assert cursor.fetchone()[0], f"backend {pid} outlived its termination"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_kept_connection_the_server_dropped_fails_one_delivery_over_to_the_view_and_is_replaced(
        app, deliver, api_account, dispatched, database_url):
    deliver(factories.application_request("req-warm"))  # the view's: the credentials' first delivery
    dispatched.clear()
    dropped = deliveries.connection()
    drop_kept_connection()
    # Used a moment ago, so not pinged: its INSERT fails, the view stores the delivery on a new connection.
    assert deliver(factories.application_request("req-after-drop")).status_code == 200
    assert dispatched == [WEBHOOK]
    assert dropped.closed and deliveries.connection() is not dropped
    assert QueuedDelivery.select().where(QueuedDelivery.request_id == "req-after-drop").count() == 1
    # And the next delivery is the direct path's again.
    assert deliver(factories.application_request("req-next")).status_code == 200
    assert dispatched == [WEBHOOK]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_kept_connection_idle_past_the_ping_age_is_checked_and_replaced_before_its_insert(
        app, deliver, api_account, dispatched, database_url, monkeypatch):
    deliver(factories.application_request("req-warm"))  # the view's: the credentials' first delivery
    dispatched.clear()
    dropped = deliveries.connection()
    drop_kept_connection()
    monkeypatch.setattr(type(deliveries.obj), "IDLE_PING_SECONDS", 0.0)  # as if it had sat idle
    assert deliver(factories.application_request("req-after-idle")).status_code == 200
    assert dispatched == [], "the direct path found the connection gone before using it"
    assert deliveries.connection() is not dropped
    assert QueuedDelivery.select().where(QueuedDelivery.request_id == "req-after-idle").count() == 1
