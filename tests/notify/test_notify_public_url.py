"""Notification links come from server.public_url; without it, from this host's fully qualified name and PORT.
The configuration page says which address is used and why it matters, and the process says it once in the log.
A request's Host header never picks a link."""
import logging
import socket

import pytest

from app.jobs.registry import JOBS, run_job
from app.notify.messages import ticket_message
from app.notify.models import KIND_TICKET_CREATED

PUBLIC_URL = "https://jit.example.com"
with_public_url = pytest.mark.parametrize("app_settings", [{"public_url": PUBLIC_URL}])
on_port_8443 = pytest.mark.parametrize("app_settings", [{"port": 8443}])


def send_notifications():
    return run_job(JOBS["send_notifications"])


def warnings_about_public_url(caplog):
    return [record for record in caplog.records
            if record.levelno == logging.WARNING and "public URL is not set" in record.getMessage()]


def fallback(port=8000):
    return f"http://{socket.getfqdn()}:{port}"


def test_the_configuration_page_says_which_address_links_use_beside_the_notification_settings(app, as_admin):
    page = as_admin.get("/admin/configuration").get_data(as_text=True)
    notice = page.index('id="public-url-notice"')
    text = page[notice:page.index("</p>", notice)]
    assert f"point at {fallback()}" in text and "ticket link sent to EPM" in text and "Host header" in text
    previous_field = page.rindex('class="field', 0, notice)
    assert page.index('id="smtp_host"') > notice > previous_field, "just before SMTP Server"
    assert page.count('id="public-url-notice"') == 1


@with_public_url
def test_the_configuration_page_says_nothing_once_it_is_set(app, as_admin):
    page = as_admin.get("/admin/configuration").get_data(as_text=True)
    assert 'id="public-url-notice"' not in page and "public URL is not set" not in page


def test_without_a_public_url_the_mail_links_this_hosts_name_and_port_and_one_warning_is_logged(
        app, caplog, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    make_approver("ben", "ben@example.com")
    with caplog.at_level(logging.INFO):
        task = make_ticket()
        assert send_notifications().result == 1
        make_ticket()
        assert send_notifications().result == 1
        send_notifications()
    [warning] = warnings_about_public_url(caplog)
    assert warning.name == "app.tickets.documents" and f"point at {fallback()}" in warning.getMessage()
    bodies = [message.get_content().splitlines() for _recipients, message in mail_configured.handler.received()]
    assert len(bodies) == 4
    assert f"Decide at: {fallback()}/tickets/{task.number}" in bodies[0]


@on_port_8443
def test_the_fallback_link_names_the_port_gunicorn_listens_on(app, make_ticket):
    task = make_ticket()

    assert f"Decide at: {fallback(8443)}/tickets/{task.number}\n" in ticket_message(task, KIND_TICKET_CREATED).body


@with_public_url
def test_with_a_public_url_the_mail_links_the_ticket_and_nothing_is_logged(
        app, caplog, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    with caplog.at_level(logging.INFO):
        task = make_ticket()
        assert send_notifications().result == 1
    assert warnings_about_public_url(caplog) == []
    [(_recipients, message)] = mail_configured.handler.received()
    assert f"Decide at: {PUBLIC_URL}/tickets/{task.number}" in message.get_content().splitlines()


def test_a_message_built_during_a_request_with_a_forged_host_links_the_configured_address(app, make_ticket):
    task = make_ticket()

    with app.test_request_context("/", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}):
        body = ticket_message(task, KIND_TICKET_CREATED).body

    assert "evil.example" not in body and f"Decide at: {fallback()}/tickets/{task.number}\n" in body
