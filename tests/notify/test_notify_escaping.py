"""Nothing EPM sends can inject markup, links or headers into a notification.

A requester chooses much of what EPM delivers (the reason, the file, its product name and
publisher, the host name), and approvers act on what the notification says. So every
EPM value is fed hostile text: HTML (`<script>`, attribute breakers), a `javascript:`
download URL, Slack's link and mention syntax (`<https://…|Approve>`, `<!channel>`),
Markdown links and images as Teams renders them (`[Approve](https://…)`), HTML entities,
and line breaks that would start e-mail headers or fake lines. The e-mail goes through a
real SMTP server on loopback (aiosmtpd); the chat webhook's JSON is caught by `responses`.
"""
import json
from datetime import timedelta

import pytest
import responses

from app.configuration import update_configuration
from app.jobs.registry import JOBS, run_job
from app.models import Task
from tests import factories

HOOK = "https://hooks.slack.com/services/T000/B000/notify-escaping"

SCRIPT = "<script>alert(document.cookie)</script>"
ATTRIBUTE_BREAKER = "\"' onmouseover=\"alert(1)\" x=\"><img src=x onerror=alert(2)>"
SLACK_LINK = "<https://phish.example.net/approve|Approve this request>"
SLACK_MENTIONS = "<!channel> <!here> <@U024BE7LH> <#C024BE7LR>"
MARKDOWN_LINK = "[Approve this request](https://phish.example.net/approve)"
MARKDOWN_IMAGE = "![tracker](https://phish.example.net/pixel.png)"
JAVASCRIPT_LINK = "[Open the download](javascript:alert(1))"
ENTITIES = "&lt;b&gt;bold&lt;/b&gt; &#60;i&#62;"
HEADER_BREAK = "x\r\nBcc: attacker@phish.example.net\r\nContent-Type: text/html"
FAKE_LINE = "fine\n\nDecide at: https://phish.example.net/approve"

APPLICATION_VALUES = {
    "user": f"CORP\\mrivera {HEADER_BREAK}",
    "hostName": f"LT-LIS-0142 {ATTRIBUTE_BREAKER}",
    "productName": f"VPN {SCRIPT} {SLACK_LINK} {MARKDOWN_LINK}",
    "publisher": f"Example {SLACK_MENTIONS} {MARKDOWN_IMAGE}",
    "reason": f"{FAKE_LINE} {JAVASCRIPT_LINK} {ENTITIES}",
    "downloadSourceUrl": "javascript:alert(document.domain)//https://example.com/vpn.exe",
}
ADMIN_VALUES = {
    "UserName": f"CORP\\akowalski {HEADER_BREAK}",
    "ComputerId": f"PC-7 {ATTRIBUTE_BREAKER} {SLACK_MENTIONS} {MARKDOWN_IMAGE}",
    "Reason": f"{FAKE_LINE} {SLACK_LINK} {MARKDOWN_LINK} {SCRIPT}",
    "DurationRequested": "1800 [x](javascript:1)",  # the column keeps 32 characters
}


@pytest.fixture
def hostile_tickets(app, mail_configured, make_approver, make_ticket):  # noqa: F811
    """Both channels configured, one approver, and a ticket of each kind made of hostile values."""
    update_configuration({"notify_webhook_url": HOOK})
    make_approver("ana", "ana@example.com")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as chat:
        chat.post(HOOK, body="ok")
        tickets = [make_ticket(factories.application_request(**APPLICATION_VALUES)),
                   make_ticket(factories.admin_request(**ADMIN_VALUES))]
        assert run_job(JOBS["send_notifications"]).result == 4
        yield {"tickets": tickets, "mail": mail_configured, "chat": chat}


def mails(server):
    return server.handler.received()


def chat_bodies(chat):
    return [json.loads(call.request.body) for call in chat.calls if call.request.url == HOOK]


def test_the_e_mail_is_one_plain_text_part_with_no_header_from_epm(hostile_tickets):
    sent = mails(hostile_tickets["mail"])
    assert len(sent) == 2
    for recipients, message in sent:
        assert recipients == ["ana@example.com"], "a line break in a value added no recipient"
        assert message["Bcc"] is None
        assert not message.is_multipart() and message.get_content_type() == "text/plain", "no HTML part"
        assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
        assert len(message.get_all("Content-Type")) == 1 and message["To"] == "ana@example.com"


def test_each_value_stays_on_its_own_labelled_line_in_the_e_mail(hostile_tickets):
    bodies = [message.get_content() for _recipients, message in mails(hostile_tickets["mail"])]
    for body in bodies:
        lines = body.splitlines()
        # Only the broker's own lines: its opening, "Label: value" rows and its closing.
        assert not any(line.startswith(("Bcc:", "Content-Type:", "Decide at: https://phish")) for line in lines)
        assert sum(line.startswith("Decide") for line in lines) == 1
    application, admin = bodies
    # Plain text shows every value as typed: there is no markup to escape into.
    assert f"Application: VPN {SCRIPT} {SLACK_LINK} {MARKDOWN_LINK}" in application
    assert "Reason: fine Decide at: https://phish.example.net/approve [Open the download]" in application
    assert "Requested by: CORP\\mrivera x Bcc: attacker@phish.example.net Content-Type: text/html" in application
    assert f"Host: PC-7 {ATTRIBUTE_BREAKER} {SLACK_MENTIONS} {MARKDOWN_IMAGE}" in admin


def test_the_download_url_is_not_in_any_notification(hostile_tickets):
    texts = [message.get_content() for _recipients, message in mails(hostile_tickets["mail"])]
    texts += [body["text"] for body in chat_bodies(hostile_tickets["chat"])]
    assert texts and not any("alert(document.domain)" in text for text in texts)


def test_chat_text_carries_no_markup_link_or_mention_from_epm(hostile_tickets):
    bodies = chat_bodies(hostile_tickets["chat"])
    assert len(bodies) == 2
    for body in bodies:
        assert list(body) == ["text"]
        text = body["text"]
        # Slack and Teams read <...> as links, mentions and HTML: none may reach them.
        assert "<" not in text and ">" not in text
        # Markdown (Teams) makes `[label](url)` a link and `![alt](url)` an image.
        assert "](" not in text
        # The values are still there to read, escaped.
        assert "&lt;https://phish.example.net/approve|Approve this request&gt;" in text
        assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in text
        assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U024BE7LH&gt;" in text
        assert "[Approve this request] (https://phish.example.net/approve)" in text
    application, admin = (body["text"] for body in bodies)
    # Entities EPM sent are shown as typed, not decoded into markup.
    assert "&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; &amp;#60;i&amp;#62;" in application
    assert "![tracker] (https://phish.example.net/pixel.png)" in admin
    assert "Requested duration: 1800 [x] (javascript:1)" in admin


def test_the_reminder_is_escaped_the_same_way(hostile_tickets):
    update_configuration({"sla_minutes": "1"})
    for ticket in hostile_tickets["tickets"]:
        Task.update(opened_at=ticket.opened_at - timedelta(minutes=5)).where(Task.id == ticket.id).execute()
    assert run_job(JOBS["sla_reminders"]).result == 2
    assert run_job(JOBS["send_notifications"]).result == 4
    reminders = [body["text"] for body in chat_bodies(hostile_tickets["chat"])][2:]
    assert len(reminders) == 2 and all("Reminder" in text for text in reminders)
    assert not any("<" in text or ">" in text or "](" in text for text in reminders)
    mailed = [message for _recipients, message in mails(hostile_tickets["mail"])][2:]
    assert all(message.get_content_type() == "text/plain" and message["Bcc"] is None for message in mailed)
