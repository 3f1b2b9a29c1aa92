"""Sending a message: e-mail over SMTP, or a JSON POST to a chat webhook; NotificationError says why not."""
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import requests

TIMEOUT_SECONDS = 10
IMPLICIT_TLS_PORT = 465


class NotificationError(Exception):
    """A notification could not be sent; the message says why."""


def email_configured(configuration):
    return bool(configuration.smtp_host.strip())


def webhook_configured(configuration):
    return bool(configuration.notify_webhook_url.strip())


def _sender(configuration):
    return configuration.mail_from.strip() or f"JIT Broker <jitbroker@{socket.getfqdn()}>"


def send_email(configuration, recipients, message, timeout=TIMEOUT_SECONDS):
    """Send `message` (subject, body) as one text/plain e-mail to `recipients`; returns refused addresses.

    The password only ever goes over TLS (port 465) or STARTTLS."""
    if not recipients:
        raise NotificationError("no recipients")
    sender = _sender(configuration)
    email = EmailMessage()
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Subject"] = message.subject
    email["Date"] = formatdate(usegmt=True)
    email["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(message.body)
    host, port = configuration.smtp_host.strip(), configuration.smtp_port
    context = ssl.create_default_context()
    try:
        if port == IMPLICIT_TLS_PORT:
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if port != IMPLICIT_TLS_PORT and configuration.smtp_starttls:
                smtp.starttls(context=context)
            if configuration.smtp_username:
                smtp.login(configuration.smtp_username, configuration.smtp_password)
            refused = smtp.send_message(email)
    except smtplib.SMTPNotSupportedError as error:
        raise NotificationError(f"the mail server {host}:{port} does not support {_command(error)}; "
                                "turn smtp_starttls off only for a server on a trusted network") from error
    except smtplib.SMTPAuthenticationError as error:
        raise NotificationError(f"the mail server {host}:{port} refused the SMTP user name or password "
                                f"({error.smtp_code})") from error
    except smtplib.SMTPRecipientsRefused as error:
        raise NotificationError(f"the mail server refused every recipient: {', '.join(error.recipients)}") from error
    except (smtplib.SMTPException, OSError) as error:
        raise NotificationError(f"could not send e-mail through {host}:{port}: "
                                f"{error.__class__.__name__}: {error}") from error
    return sorted(refused)


def _command(error):
    text = str(error)
    return "STARTTLS" if "STARTTLS" in text.upper() else (text or "a required extension")


def send_webhook(url, text, timeout=TIMEOUT_SECONDS):
    """POST {"text": text} as JSON, the body Slack and Teams incoming webhooks accept."""
    try:
        response = requests.post(url, json={"text": text}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as error:
        raise NotificationError(f"could not reach the notification webhook: {error.__class__.__name__}") from error
    if not 200 <= response.status_code < 300:
        raise NotificationError(f"the notification webhook answered HTTP {response.status_code}: "
                                f"{response.text[:200]}")
