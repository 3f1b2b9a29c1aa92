"""EPM calls reuse one kept-alive connection per thread, and the fake EPM keeps connections as EPM does."""
import logging
import socket
import threading
import uuid
from datetime import datetime

import pytest
import requests

from app import contract
from app.epm import client as epm_client
from app.epm.client import EpmClient, close_http_sessions
from app.epm.errors import EpmUnreachable
from app.epm.fake import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEpm
from app.epm.payloads import application_decision_body


@pytest.fixture(autouse=True)
def no_kept_connections():
    close_http_sessions()
    yield
    close_http_sessions()


@pytest.fixture
def fake():
    with FakeEpm() as running:
        yield running


def client_for(fake):
    return EpmClient(fake.url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, timeout=5)


def decide(fake):
    request_id = str(uuid.uuid4())
    body = application_decision_body(
        decision="Approved", performed_by="jchen", duration="3600", request_id=request_id,
        decision_time=datetime(2026, 11, 20, 14, 20, 44), reason="ok", sys_id="0" * 32, ticket_number="INC0010001",
        ticket_url="http://127.0.0.1:8000/tickets/INC0010001")
    # A new client per decision, as the broker builds one per delivery attempt.
    client_for(fake).send_application_decision(body, request_id)


def test_decisions_from_one_thread_share_one_connection(fake):
    client_for(fake).test_connection()  # the token request, then a read
    opened = fake.connections_opened
    for _ in range(5):
        decide(fake)
    assert fake.applied_count == 5
    assert fake.connections_opened == opened


def test_each_thread_has_its_own_connection(fake):
    decide(fake)
    opened = fake.connections_opened
    worker = threading.Thread(target=decide, args=(fake,))
    worker.start()
    worker.join(10)
    assert fake.applied_count == 2
    assert fake.connections_opened == opened + 1


def test_a_connection_idle_too_long_is_not_reused(fake, monkeypatch):
    decide(fake)
    opened = fake.connections_opened
    monkeypatch.setattr(epm_client, "KEEPALIVE_IDLE_SECONDS", -1)
    decide(fake)
    assert fake.applied_count == 2
    assert fake.connections_opened == opened + 1


def test_a_stopped_fake_answers_no_call_on_a_kept_connection():
    with FakeEpm() as stopped:
        decide(stopped)
        client = client_for(stopped)
    with pytest.raises(EpmUnreachable, match="Connection refused by 127.0.0.1"):
        client.list_requests(contract.KIND_APPLICATION, page_size=1)
    assert stopped.received_count == 1


def test_a_refused_request_whose_body_was_not_read_leaves_the_connection_usable(fake):
    with requests.Session() as session:
        refused = session.post(f"{fake.url}{contract.EPM_APPLICATION_DECISION_PATH}", json={"x": "y" * 5000},
                               headers={"Authorization": "Bearer not-a-token"}, timeout=5)
        state = session.get(f"{fake.url}/_fake/state", timeout=5)
    assert refused.status_code == 401
    assert state.status_code == 200 and state.json()["received"] == 0
    assert fake.connections_opened == 1


def test_a_client_asking_to_close_gets_its_connection_closed(fake):
    with requests.Session() as session:
        for _ in range(2):
            assert session.get(f"{fake.url}/_fake/state", headers={"Connection": "close"}, timeout=5).ok
    assert fake.connections_opened == 2


def test_an_idle_kept_alive_connection_is_closed_without_an_error_in_the_log(monkeypatch, caplog):
    monkeypatch.setattr("app.epm.fake._KeepAliveHandler.timeout", 0.2)
    with FakeEpm() as idle_fake, socket.create_connection(("127.0.0.1", int(idle_fake.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(b"GET /_fake/state HTTP/1.1\r\nHost: fake\r\n\r\n")
        sock.settimeout(10)
        received = b""
        while chunk := sock.recv(4096):  # the answer, then the fake closing the idle connection
            received += chunk
    assert received.startswith(b"HTTP/1.1 200")
    assert [record for record in caplog.records if record.levelno >= logging.WARNING] == []
