"""Sending a message: e-mail over SMTP, or a JSON POST to a chat webhook; NotificationError says why not."""
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import requests

from app import egress
from app.notify.messages import webhook_answer
from app.notify.models import CHANNEL_EMAIL, CHANNEL_WEBHOOK

TIMEOUT_SECONDS = 10
IMPLICIT_TLS_PORT = 465


class NotificationError(Exception):
    """A notification could not be sent; the message says why. `sent` lists the e-mail addresses that were
    sent to before the failure, so a later attempt need not write to them again."""

    def __init__(self, message, sent=(), retry_after=None):
        super().__init__(message)
        self.sent = list(sent)
        self.retry_after = retry_after  # seconds the receiver asked to be left alone (Retry-After), or None


def email_configured(configuration):
    return bool(configuration.smtp_host.strip())


def webhook_configured(configuration):
    return bool(configuration.notify_webhook_url.strip())


def configured_channels(configuration):
    """The channels `configuration` can send on: e-mail (an SMTP host is set), the chat webhook (a URL is set)."""
    found = []
    if email_configured(configuration):
        found.append(CHANNEL_EMAIL)
    if webhook_configured(configuration):
        found.append(CHANNEL_WEBHOOK)
    return found


def _sender(configuration):
    return configuration.mail_from.strip() or f"JIT Broker <jitbroker@{socket.getfqdn()}>"


def _email(sender, recipient, message):
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body)
    return email


def send_email(configuration, recipients, message, timeout=TIMEOUT_SECONDS):
    """Send `message` (subject, body) as a text/plain e-mail to each of `recipients`, one message per address
    with that address alone in To: and in the envelope, over one SMTP session; returns the addresses the server
    refused.

    One message each, so no approver learns who else approves and a bounce names one person. The password only
    ever goes over TLS (port 465) or STARTTLS. NotificationError (with `sent`) when the server could not be used
    or put an address off until later."""
    if not recipients:
        raise NotificationError("no recipients")
    sender = _sender(configuration)
    host, port = configuration.smtp_host.strip(), configuration.smtp_port
    context = ssl.create_default_context()
    sent, refused, deferred = [], [], []
    try:
        # Only where app/egress.py allows, checked on the address connected to (private: smtp_internal).
        if port == IMPLICIT_TLS_PORT:
            smtp = egress.CheckedSMTPSSL(host, port, timeout=timeout, context=context,
                                         internal=configuration.smtp_internal)
        else:
            smtp = egress.CheckedSMTP(host, port, timeout=timeout, internal=configuration.smtp_internal)
        with smtp:
            if port != IMPLICIT_TLS_PORT and configuration.smtp_starttls:
                smtp.starttls(context=context)
            if configuration.smtp_username:
                smtp.login(configuration.smtp_username, configuration.smtp_password)
            for recipient in recipients:
                try:
                    smtp.send_message(_email(sender, recipient, message))
                except smtplib.SMTPRecipientsRefused:
                    refused.append(recipient)
                except smtplib.SMTPDataError as error:
                    # The server's answer to this one message; the session goes on with the next.
                    if error.smtp_code >= 500:
                        refused.append(recipient)
                    else:
                        deferred.append(f"{recipient} ({error.smtp_code} {_text(error.smtp_error)})")
                else:
                    sent.append(recipient)
    except egress.EgressRefused as error:
        raise NotificationError(f"refused to connect to the mail server: {error}", sent) from None
    except smtplib.SMTPNotSupportedError as error:
        raise NotificationError(f"the mail server {host}:{port} does not support {_command(error)}; "
                                "turn smtp_starttls off only for a server on a trusted network", sent) from error
    except smtplib.SMTPAuthenticationError as error:
        raise NotificationError(f"the mail server {host}:{port} refused the SMTP user name or password "
                                f"({error.smtp_code})", sent) from error
    except (smtplib.SMTPException, OSError) as error:
        raise NotificationError(f"could not send e-mail through {host}:{port}: "
                                f"{error.__class__.__name__}: {error}", sent) from error
    if deferred:
        raise NotificationError(f"the mail server put off the message to {', '.join(deferred)}", sent)
    return sorted(refused)


def refused_everyone(refused):
    """The NotificationError for a server that refused every address it was given."""
    return NotificationError(f"the mail server refused every recipient: {', '.join(refused)}")


def _text(answer):
    return answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)


def _command(error):
    text = str(error)
    return "STARTTLS" if "STARTTLS" in text.upper() else (text or "a required extension")


def send_webhook(url, text, timeout=TIMEOUT_SECONDS):
    """POST {"text": text} as JSON, the body Slack and Teams incoming webhooks accept; never to a link-local,
    metadata or private address (checked on the address connected to)."""
    try:
        with egress.checked_session() as session:
            response = session.post(url, json={"text": text}, timeout=timeout, allow_redirects=False)
    except egress.EgressRefused as error:
        raise NotificationError(f"refused to call the notification webhook: {error}") from None
    except requests.RequestException as error:
        raise NotificationError(f"could not reach the notification webhook: {error.__class__.__name__}") from error
    if not 200 <= response.status_code < 300:
        raise NotificationError(f"the notification webhook answered HTTP {response.status_code}: "
                                f"{webhook_answer(response.text, url)}",
                                retry_after=egress.retry_after(response.headers))
