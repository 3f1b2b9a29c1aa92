"""Notifications go only where app/egress.py allows: the chat webhook and the mail server, checked on the
address the connection is made to, and only on loopback here."""
import smtplib

import pytest

from app import egress
from app.notify.channels import NotificationError, send_email, send_webhook
from app.notify.messages import Message
from tests.resolving import answers  # noqa: F401 - a fixture
from tests.test_egress import server  # noqa: F401 - a fixture


def test_the_chat_webhook_is_not_posted_to_a_private_address(answers, server):
    answers("hooks.test", "10.1.2.3")
    with pytest.raises(NotificationError, match="refused to call the notification webhook"):
        send_webhook(f"http://hooks.test:{server.port}/hook", "JIT-0001 waits")
    assert server.hosts == []


def test_the_chat_webhook_is_posted_to_a_loopback_address(answers, server):
    answers("hooks.test", "127.0.0.1")
    send_webhook(f"http://hooks.test:{server.port}/hook", "JIT-0001 waits")
    assert server.hosts == [f"hooks.test:{server.port}"]


class _Mail:
    smtp_host = "mail.test"
    smtp_username = ""
    smtp_password = ""
    smtp_starttls = False
    mail_from = "JIT Broker <jit@example.com>"

    def __init__(self, port, internal):
        self.smtp_port = port
        self.smtp_internal = internal


@pytest.mark.parametrize("port", [25, 465])
def test_the_mail_server_is_not_reached_at_a_private_address_unless_internal(answers, port):
    answers("mail.test", "10.9.8.7")
    with pytest.raises(NotificationError, match="refused to connect to the mail server.*internal"):
        send_email(_Mail(port, internal=False), ["approver@example.com"], Message("subject", "body"))


def test_an_internal_mail_server_is_reached_at_its_checked_address(answers, smtp_server):
    answers("mail.test", "127.0.0.1")
    refused = send_email(_Mail(smtp_server.port, internal=True), ["approver@example.com"],
                         Message("subject", "body"))
    assert refused == []
    assert [recipients for recipients, _message in smtp_server.handler.received()] == [["approver@example.com"]]


def test_the_metadata_mail_server_is_refused_even_when_internal(answers):
    answers("mail.test", "169.254.169.254")
    with pytest.raises(egress.EgressRefused):
        egress.CheckedSMTP("mail.test", 25, timeout=5, internal=True)
    assert issubclass(egress.CheckedSMTPSSL, smtplib.SMTP_SSL)
