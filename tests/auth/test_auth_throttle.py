"""Sign-in throttling: counted in the database, one lock per person across every door, never locking EPM out."""
import re
import statistics
import time
from datetime import timedelta

import pytest

from app import create_app, contract
from app.audit.models import AuditEntry
from app.auth import throttle
from app.auth.models import AuthFailure
from tests import factories
from tests.conftest import WEBHOOK, basic_auth

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    def __init__(self, app, address="198.51.100.7"):
        self.client = app.test_client()
        self.address = address

    def open(self, method, path, **kwargs):
        with self.client.application.app_context():
            return self.client.open(path, method=method, environ_base={"REMOTE_ADDR": self.address}, **kwargs)

    def sign_in(self, username, password):
        page = self.open("GET", "/sign-in").get_data(as_text=True)
        token = _TOKEN.search(page).group(1)
        return self.open("POST", "/sign-in", data={"csrf_token": token, "username": username, "password": password})


@pytest.fixture
def browser(app, approver):
    return Browser(app)


def fail(browser, username, times):
    for _ in range(times):
        assert browser.sign_in(username, "wrong password!").status_code == 401


def test_five_failures_lock_the_account_even_for_the_right_password(browser, approver):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    answer = browser.sign_in(approver.username, factories.PASSWORD)
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in answer.get_data(as_text=True)


def test_the_lock_is_written_to_the_audit_log_once(browser, approver):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    browser.sign_in(approver.username, factories.PASSWORD)
    entries = list(AuditEntry.select().where(AuditEntry.action == throttle.AUDIT_ACTION))
    assert [(entry.object_type, entry.object_id, entry.source_address) for entry in entries] == [
        ("account", approver.username, browser.address)]


def test_four_failures_do_not_lock(browser, approver):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT - 1)
    assert browser.sign_in(approver.username, factories.PASSWORD).status_code == 302


def test_the_lock_ends_when_the_failures_leave_the_window(browser, approver, monkeypatch):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    later = throttle.utcnow() + throttle.ACCOUNT_WINDOW + timedelta(seconds=1)
    monkeypatch.setattr(throttle, "utcnow", lambda: later)
    assert browser.sign_in(approver.username, factories.PASSWORD).status_code == 302


def test_a_locked_account_does_not_lock_another(browser, approver, admin):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    assert browser.sign_in(admin.username, factories.PASSWORD).status_code == 302


def test_unknown_names_are_locked_the_same_way_so_nothing_tells_which_names_exist(browser, approver):
    fail(browser, "no-such-person", throttle.ACCOUNT_LIMIT)
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    unknown = browser.sign_in("no-such-person", "wrong password!")
    known = browser.sign_in(approver.username, "wrong password!")
    assert unknown.status_code == known.status_code == 429

    def page(response, name):
        # The two locks began a few seconds apart (hashing paces the failures): their countdowns may differ,
        # and so may the form's CSRF token, which carries the second it was signed in.
        text = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value="TOKEN"',
                      response.get_data(as_text=True))
        return re.sub(r"\d\d:\d\d UTC", "HH:MM UTC", text.replace(name, "NAME"))

    assert page(unknown, "no-such-person") == page(known, approver.username)


def test_twenty_failures_a_minute_lock_the_address_for_every_name(app, approver):
    guesser, colleague = Browser(app, "203.0.113.9"), Browser(app, "203.0.113.10")
    for index in range(throttle.ADDRESS_LIMIT):
        assert guesser.sign_in(f"guess-{index}", "wrong password!").status_code == 401
    assert guesser.sign_in(approver.username, factories.PASSWORD).status_code == 429
    assert colleague.sign_in(approver.username, factories.PASSWORD).status_code == 302
    audit = AuditEntry.get(AuditEntry.action == throttle.AUDIT_ACTION)
    assert (audit.object_type, audit.object_id) == ("address", "203.0.113.9")


def test_failures_are_shared_by_every_worker(app, database_url, approver):
    """Two app instances on one database, as two gunicorn workers are: failures on one lock the other."""
    fail(Browser(app), approver.username, throttle.ACCOUNT_LIMIT)
    other_worker = create_app({"database_url": database_url, "secret_key": "test-secret-key", "TESTING": True})
    assert Browser(other_worker).sign_in(approver.username, factories.PASSWORD).status_code == 429


def test_wrong_webhook_passwords_lock_the_guessing_address_never_the_api_account(app, api_account, api_auth):
    guesser = app.test_client()
    wrong = basic_auth(api_account.username, "not the password")
    for _ in range(throttle.ADDRESS_LIMIT):
        answer = guesser.post(WEBHOOK, json={}, headers=wrong, environ_base={"REMOTE_ADDR": "203.0.113.66"})
        assert answer.status_code == 401
    refused = guesser.post(WEBHOOK, json=factories.admin_request(), headers=api_auth,
                           environ_base={"REMOTE_ADDR": "203.0.113.66"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.json["status"] == "failure"
    epm = app.test_client().post(WEBHOOK, json=factories.admin_request(), headers=api_auth,
                                 environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert epm.status_code == 200
    assert AuthFailure.select().where(AuthFailure.kind == throttle.SIGN_IN).count() == 0


def test_basic_failures_count_against_a_person_for_sign_in_too(app, api_account):
    """One lock per person's account across every door: wrong Basic passwords, from any address, lock the form."""
    factories.account("jchen", contract.ROLE_USER)
    for index in range(throttle.ACCOUNT_LIMIT):
        answer = app.test_client().get(f"{contract.API_PREFIX}/tickets/NOSUCH", headers=basic_auth("jchen", "wrong"),
                                       environ_base={"REMOTE_ADDR": f"192.0.2.{index + 1}"})
        assert answer.status_code == 401
    locked = Browser(app).sign_in("jchen", factories.PASSWORD)
    assert locked.status_code == 429
    assert re.search(r"try again after \d\d:\d\d UTC", locked.get_data(as_text=True))


def test_sign_in_failures_lock_basic_for_the_same_person(browser, approver):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    answer = browser.client.get(f"{contract.API_PREFIX}/tickets/NOSUCH",
                                headers=basic_auth(approver.username, factories.PASSWORD),
                                environ_base={"REMOTE_ADDR": "192.0.2.99"})
    assert answer.status_code == 429
    assert re.fullmatch(r"Too many failed attempts; try again after \d\d:\d\d UTC", answer.json["error"]["message"])


def test_api_failures_count_per_address_so_guesses_elsewhere_never_block_epm(app, api_account, api_auth):
    wrong = basic_auth(api_account.username, "not the password")
    for _ in range(throttle.ADDRESS_LIMIT):
        app.test_client().post(WEBHOOK, json={}, headers=wrong, environ_base={"REMOTE_ADDR": "203.0.113.66"})
    epm = app.test_client().post(WEBHOOK, json=factories.admin_request(), headers=api_auth,
                                 environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert epm.status_code == 200


def test_guesses_at_other_names_from_epms_address_never_block_epm(app, api_account, api_auth):
    for index in range(throttle.ADDRESS_LIMIT + 5):
        app.test_client().post(WEBHOOK, json={}, headers=basic_auth(f"guess-{index}", "wrong"),
                               environ_base={"REMOTE_ADDR": "192.0.2.50"})
    refused = app.test_client().post(WEBHOOK, json={}, headers=basic_auth("someone", "wrong"),
                                     environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert refused.status_code == 429
    epm = app.test_client().post(WEBHOOK, json=factories.admin_request(), headers=api_auth,
                                 environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert epm.status_code == 200


def test_unlock_forgets_the_failures(browser, approver):
    fail(browser, approver.username, throttle.ACCOUNT_LIMIT)
    assert throttle.locked_until(approver.username) is not None
    assert throttle.unlock(approver.username) == throttle.ACCOUNT_LIMIT
    assert throttle.locked_until(approver.username) is None
    assert browser.sign_in(approver.username, factories.PASSWORD).status_code == 302


def test_the_lock_is_told_as_the_next_whole_minute_in_utc():
    assert throttle.until_text(throttle.utcnow().replace(hour=5, minute=22, second=40)) == "05:23 UTC"
    assert throttle.until_text(throttle.utcnow().replace(hour=5, minute=22, second=0, microsecond=0)) == "05:22 UTC"


def test_unknown_and_known_names_take_about_as_long_to_refuse(browser, approver):
    """The password hash is checked for unknown names too, so timing does not tell which names exist."""
    def median_seconds(username):
        samples = []
        for _ in range(3):
            start = time.perf_counter()
            assert browser.sign_in(username, "wrong password!").status_code == 401
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    known, unknown = median_seconds(approver.username), median_seconds("no-such-person")
    assert 0.4 < unknown / known < 2.5
