"""Fixtures for jobs and notifications: tickets as EPM creates them, a fake EPM, a local SMTP server."""
import email
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller

from app import create_app
from app.configuration import update_configuration
from app.db import database
from app.migrations import upgrade
from app.logs import store as log_store
from app.models import Account, Task, utcnow
from tests import factories
from tests.conftest import empty_tables
from tests.live import free_port


@pytest.fixture
def make_ticket(deliver):
    """Deliver a created event as EPM would and return the ticket it became (opened `age` ago)."""

    def make(body=None, age=None, **task_values):
        answer = deliver(body or factories.application_request())
        assert answer.status_code == 200, answer.get_data(as_text=True)
        task = Task.get(Task.number == answer.json["result"]["ticket"])
        if age is not None:
            task_values["opened_at"] = utcnow() - age
        if task_values:
            Task.update(**task_values).where(Task.id == task.id).execute()
            task = Task.get_by_id(task.id)
        return task

    return make



class RecordingHandler:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def received(self):
        """[(envelope recipients, parsed message)] in the order they arrived."""
        with self._lock:
            return [(envelope.rcpt_tos, email.message_from_bytes(envelope.content, policy=email.policy.default))
                    for envelope in self.messages]


@pytest.fixture
def make_approver(app):
    """An account with an e-mail address and assignment groups."""

    def make(name, email_address, groups="", role="user", active=True):
        account = factories.account(name, role, active=active)
        Account.update(email=email_address, groups=groups).where(Account.id == account.id).execute()
        return account

    return make


@pytest.fixture
def smtp_server():
    """A real SMTP server (aiosmtpd) on a free loopback port; `.handler.messages` holds what it received."""
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    controller.handler = handler
    yield controller
    controller.stop()


@pytest.fixture
def mail_configured(app, smtp_server):
    """The configuration pointed at the local SMTP server (no STARTTLS on loopback)."""
    update_configuration({"smtp_host": "127.0.0.1", "smtp_port": str(smtp_server.port), "smtp_starttls": "false",
                          "mail_from": "JIT Broker <jit@example.com>"})
    return smtp_server


@pytest.fixture
def pg_app(postgres_url):
    """An app on PostgreSQL only: what several scheduler hosts share."""
    app = create_app({"database_url": postgres_url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        with database.connection_context():
            upgrade()
            empty_tables()
        yield app
        log_store.flush(5)
        database.close_all()
