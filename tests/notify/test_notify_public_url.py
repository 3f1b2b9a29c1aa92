"""Without server.public_url, notifications carry no link to their ticket: the configuration page says so beside
the notification settings, and the notification sender says so once in the log."""
import logging

import pytest

from app.jobs.registry import JOBS, run_job
from app.notify.messages import PUBLIC_URL_UNSET

PUBLIC_URL = "https://jit.example.com"
with_public_url = pytest.mark.parametrize("app_settings", [{"public_url": PUBLIC_URL}])


def send_notifications():
    return run_job(JOBS["send_notifications"])


def warnings_about_public_url(caplog):
    return [record for record in caplog.records
            if record.levelno == logging.WARNING and "public URL is not set" in record.getMessage()]


def test_the_configuration_page_says_so_beside_the_notification_settings(app, as_admin):
    page = as_admin.get("/admin/configuration").get_data(as_text=True)
    notice = page.index('id="public-url-notice"')
    assert "carry no link to it" in page[notice:page.index("</p>", notice)]
    previous_field = page.rindex('class="field', 0, notice)
    assert page.index('id="smtp_host"') > notice > previous_field, "just before SMTP Server"
    assert page.count('id="public-url-notice"') == 1


@with_public_url
def test_the_configuration_page_says_nothing_once_it_is_set(app, as_admin):
    page = as_admin.get("/admin/configuration").get_data(as_text=True)
    assert 'id="public-url-notice"' not in page and "public URL is not set" not in page


def test_the_sender_logs_one_warning_not_one_per_message(app, caplog, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    make_approver("ben", "ben@example.com")
    with caplog.at_level(logging.INFO):
        task = make_ticket()
        assert send_notifications().result == 1
        make_ticket()
        assert send_notifications().result == 1
        send_notifications()
    [warning] = warnings_about_public_url(caplog)
    assert warning.name == "app.notify.service" and warning.getMessage() == PUBLIC_URL_UNSET
    bodies = [message.get_content() for _recipients, message in mail_configured.handler.received()]
    assert len(bodies) == 4
    assert f"Decide in JIT Broker: ticket {task.number}." in bodies[0] and "http" not in bodies[0]


@with_public_url
def test_with_a_public_url_the_mail_links_the_ticket_and_nothing_is_logged(
        app, caplog, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    with caplog.at_level(logging.INFO):
        task = make_ticket()
        assert send_notifications().result == 1
    assert warnings_about_public_url(caplog) == []
    [(_recipients, message)] = mail_configured.handler.received()
    assert f"Decide at: {PUBLIC_URL}/tickets/{task.number}" in message.get_content()
