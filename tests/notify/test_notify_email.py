"""New-ticket e-mail to the assignment group's approvers, through a real SMTP server on loopback."""
import time

from app.configuration import update_configuration
from app.jobs.registry import JOBS, run_job
from app.notify import service as notify
from app.notify.models import CHANNEL_EMAIL, STATUS_PENDING, STATUS_SENT, STATUS_SKIPPED, Notification
from tests import factories
from tests.live import free_port


def received(smtp_server):
    return smtp_server.handler.received()


def send_notifications():
    return run_job(JOBS["send_notifications"])


def test_a_new_ticket_is_mailed_to_its_group_s_approvers_by_the_job_not_the_webhook(
        app, mail_configured, make_ticket, make_approver):
    update_configuration({"default_assignment_group": "Endpoint Team"})
    make_approver("ana", "ana@example.com", "Endpoint Team, Desk")
    make_approver("ben", "ben@example.com", "endpoint team ")
    make_approver("carl", "carl@example.com", "Network")
    make_approver("dora", "dora@example.com", "Endpoint Team", active=False)
    make_approver("epm-bot", "bot@example.com", "Endpoint Team", role="api")
    make_approver("root", "root@example.com", "Endpoint Team", role="admin")
    make_approver("nomail", "", "Endpoint Team")

    task = make_ticket(factories.application_request(user="CORP\\mrivera", productName="Example VPN Client"))

    assert received(mail_configured) == [], "the webhook answer does not wait for mail"
    assert Notification.get().status == STATUS_PENDING
    assert send_notifications().result == 1
    mails = received(mail_configured)
    assert sorted(recipients for recipients, _message in mails) == [
        ["ana@example.com"], ["ben@example.com"], ["root@example.com"]]
    for _recipients, message in mails:
        assert message["From"] == "JIT Broker <jit@example.com>"
        assert task.number in message["Subject"]
        assert message.get_content_type() == "text/plain"
        body = message.get_content()
        assert "Requested by: CORP\\mrivera" in body and "Application: Example VPN Client" in body
    sent = Notification.get()
    assert sent.status == STATUS_SENT and sent.sent_at
    assert sent.recipients == "ana@example.com, ben@example.com, root@example.com"
    assert send_notifications().result == 0, "sent once"
    assert len(received(mail_configured)) == 3


def test_each_approver_gets_a_message_of_their_own_naming_nobody_else(
        app, mail_configured, make_ticket, make_approver):
    for name in ("ana", "ben", "carl"):
        make_approver(name, f"{name}@example.com")
    make_ticket()
    send_notifications()
    mails = received(mail_configured)
    assert len(mails) == 3
    for recipients, message in mails:
        [address] = recipients
        assert message["To"] == address, "the envelope and the To: header name the same one person"
        assert message["Cc"] is None and message["Bcc"] is None
        others = {f"{name}@example.com" for name in ("ana", "ben", "carl")} - {address}
        assert not any(other in message.as_string() for other in others)
    assert len({message["Message-ID"] for _recipients, message in mails}) == 3


def test_an_address_the_server_refuses_is_noted_and_the_others_are_sent(
        app, mail_configured, make_ticket, make_approver):
    for name in ("ana", "ben", "carl"):
        make_approver(name, f"{name}@example.com")
    mail_configured.handler.unknown.add("ben@example.com")
    make_ticket()
    assert send_notifications().result == 1
    assert sorted(recipients for recipients, _message in received(mail_configured)) == [
        ["ana@example.com"], ["carl@example.com"]]
    sent = Notification.get()
    assert sent.status == STATUS_SENT and sent.recipients == "ana@example.com, carl@example.com"
    assert sent.last_error == "refused by the mail server: ben@example.com"


def test_a_message_put_off_is_retried_without_writing_again_to_those_already_sent(
        app, mail_configured, make_ticket, make_approver):
    for name in ("ana", "ben", "carl"):
        make_approver(name, f"{name}@example.com")
    mail_configured.handler.put_off.add("ben@example.com")
    make_ticket()
    assert send_notifications().result == 0
    waiting = Notification.get()
    assert waiting.status == STATUS_PENDING and waiting.recipients == "ana@example.com, carl@example.com"
    assert "put off the message to ben@example.com (451" in waiting.last_error
    Notification.update(next_attempt_at=Notification.created_at).execute()
    assert send_notifications().result == 1
    assert sorted(recipients for recipients, _message in received(mail_configured)) == [
        ["ana@example.com"], ["ben@example.com"], ["carl@example.com"]], "one message each, nobody twice"
    sent = Notification.get()
    assert sent.status == STATUS_SENT and sent.attempts == 2
    assert sent.recipients == "ana@example.com, carl@example.com, ben@example.com"


def test_every_address_refused_is_a_failure_retried_later(app, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    mail_configured.handler.unknown.add("ana@example.com")
    make_ticket()
    assert send_notifications().result == 0
    notification = Notification.get()
    assert notification.status == STATUS_PENDING
    assert notification.last_error == "the mail server refused every recipient: ana@example.com"


def test_a_ticket_without_a_group_goes_to_every_approver(app, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com", "Endpoint Team")
    make_approver("carl", "carl@example.com", "")
    make_ticket()
    send_notifications()
    assert sorted(recipients for recipients, _message in received(mail_configured)) == [
        ["ana@example.com"], ["carl@example.com"]]


def test_nobody_to_tell_is_recorded_not_retried(app, mail_configured, make_ticket, make_approver):
    update_configuration({"default_assignment_group": "Nobody's Group"})
    make_approver("ana", "ana@example.com", "Endpoint Team")
    make_ticket()
    send_notifications()
    notification = Notification.get()
    assert notification.status == STATUS_SKIPPED and "Nobody's Group" in notification.last_error
    assert received(mail_configured) == []


def test_what_epm_sent_stays_plain_text_in_the_mail(app, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    make_ticket(factories.application_request(
        user="CORP\\x\r\nBcc: attacker@example.net", productName="<b>Tool</b>",
        reason="fine\r\n\r\nDecide at: https://phish.example.net"))
    send_notifications()
    [(recipients, message)] = received(mail_configured)
    assert recipients == ["ana@example.com"], "no header was injected"
    assert message["Bcc"] is None
    body = message.get_content()
    assert "Reason: fine Decide at: https://phish.example.net" in body, "a value cannot start a line of its own"
    assert "Application: <b>Tool</b>" in body and message.get_content_type() == "text/plain"


def test_an_unreachable_mail_server_is_retried_later_without_failing_the_webhook(app, make_ticket, make_approver):
    dead_port = free_port()
    update_configuration({"smtp_host": "127.0.0.1", "smtp_port": str(dead_port), "smtp_starttls": "false"})
    make_approver("ana", "ana@example.com")
    started = time.monotonic()
    make_ticket()
    assert time.monotonic() - started < 5

    assert send_notifications().result == 0
    notification = Notification.get()
    assert notification.status == STATUS_PENDING and notification.attempts == 1
    assert "could not send e-mail through 127.0.0.1" in notification.last_error
    assert notification.next_attempt_at > notification.created_at
    assert send_notifications().result == 0 and Notification.get().attempts == 1, "not before its next attempt"


def test_a_failed_mail_is_sent_on_a_later_attempt(app, smtp_server, make_ticket, make_approver):
    update_configuration({"smtp_host": "127.0.0.1", "smtp_port": str(free_port()), "smtp_starttls": "false"})
    make_approver("ana", "ana@example.com")
    make_ticket()
    send_notifications()
    update_configuration({"smtp_port": str(smtp_server.port)})
    Notification.update(next_attempt_at=Notification.created_at).execute()
    assert send_notifications().result == 1
    assert Notification.get().status == STATUS_SENT and Notification.get().attempts == 2
    assert len(received(smtp_server)) == 1


def test_starttls_is_required_unless_switched_off(app, smtp_server, make_ticket, make_approver):
    update_configuration({"smtp_host": "127.0.0.1", "smtp_port": str(smtp_server.port), "smtp_starttls": "true"})
    make_approver("ana", "ana@example.com")
    make_ticket()
    send_notifications()
    assert "does not support STARTTLS" in Notification.get().last_error
    assert received(smtp_server) == [], "nothing goes out unencrypted when STARTTLS is on"


def test_no_channel_configured_queues_nothing(app, make_ticket):
    make_ticket()
    assert Notification.select().count() == 0


def test_notify_test_sends_a_test_mail(app, mail_configured, runner):
    result = runner.invoke(args=["notify", "test", "--to", "ops@example.com"])
    assert result.exit_code == 0, result.output
    assert "email: OK: sent to ops@example.com" in result.output
    assert "webhook: off" in result.output
    [(recipients, message)] = received(mail_configured)
    assert recipients == ["ops@example.com"] and "Test notification" in message["Subject"]


def test_notify_test_reports_a_failure(app, runner):
    update_configuration({"smtp_host": "127.0.0.1", "smtp_port": str(free_port()), "smtp_starttls": "false",
                          "mail_from": "jit@example.com"})
    result = runner.invoke(args=["notify", "test"])
    assert result.exit_code == 1 and "email: FAILED: could not send e-mail" in result.output


def test_queueing_twice_for_one_ticket_and_channel_keeps_one_row(app, mail_configured, make_ticket):
    task = make_ticket()
    assert notify.queue_ticket_created(task) == 0
    assert Notification.select().where(Notification.channel == CHANNEL_EMAIL).count() == 1


def test_an_address_refused_on_a_later_attempt_does_not_undo_those_sent_before(
        app, mail_configured, make_ticket, make_approver):
    make_approver("ana", "ana@example.com")
    make_approver("ben", "ben@example.com")
    mail_configured.handler.put_off.add("ben@example.com")
    make_ticket()
    send_notifications()
    mail_configured.handler.unknown.add("ben@example.com")
    Notification.update(next_attempt_at=Notification.created_at).execute()
    assert send_notifications().result == 1
    sent = Notification.get()
    assert sent.status == STATUS_SENT and sent.recipients == "ana@example.com"
    assert sent.last_error == "refused by the mail server: ben@example.com"
    assert [recipients for recipients, _message in received(mail_configured)] == [["ana@example.com"]]


def test_notify_test_fails_when_every_address_is_refused(app, mail_configured, runner):
    mail_configured.handler.unknown.add("nobody@example.com")
    result = runner.invoke(args=["notify", "test", "--to", "nobody@example.com"])
    assert result.exit_code == 1
    assert "email: FAILED: the mail server refused every recipient: nobody@example.com" in result.output
