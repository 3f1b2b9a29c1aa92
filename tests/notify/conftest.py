"""Fixtures for notifications: approvers with e-mail addresses, a local SMTP server."""
import email
import email.policy
import threading

import pytest
from aiosmtpd.controller import Controller

from app.configuration import update_configuration
from app.models import Account
from tests import factories
from tests.live import free_port


class RecordingHandler:
    """An aiosmtpd handler keeping every message it accepts.

    Addresses in `unknown` are refused at RCPT TO (550); a message to an address in `put_off` is answered
    "451 try again later" at its end of data, once per address."""

    def __init__(self):
        self.messages = []
        self.unknown = set()
        self.put_off = set()
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.unknown:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            for recipient in envelope.rcpt_tos:
                if recipient in self.put_off:
                    self.put_off.discard(recipient)
                    return "451 4.3.0 Try again later"
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
