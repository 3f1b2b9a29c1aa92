"""Rotating EPM's webhook password: old and new both accepted for a while, so no delivery is refused."""
from datetime import timedelta

from app.auth import accounts
from app.models import Account, utcnow
from tests import factories
from tests.conftest import WEBHOOK, basic_auth

NEW_PASSWORD = "a-brand-new-webhook-password"


def post(client, password):
    return client.post(WEBHOOK, json=factories.admin_request(), headers=basic_auth("epm", password))


def test_old_and_new_passwords_both_work_during_the_rotation_window(client, api_account):
    accounts.set_password(api_account, NEW_PASSWORD, keep_previous_for=timedelta(hours=2))
    assert post(client, factories.PASSWORD).status_code == 200
    assert post(client, NEW_PASSWORD).status_code == 200


def test_the_old_password_stops_when_the_window_closes(client, api_account):
    accounts.set_password(api_account, NEW_PASSWORD, keep_previous_for=timedelta(hours=2))
    Account.update(previous_password_expires_at=utcnow() - timedelta(seconds=1)).execute()
    assert post(client, factories.PASSWORD).status_code == 401
    assert post(client, NEW_PASSWORD).status_code == 200


def test_a_plain_reset_ends_the_old_password_at_once(client, api_account):
    accounts.set_password(api_account, NEW_PASSWORD)
    assert post(client, factories.PASSWORD).status_code == 401


def test_people_never_get_two_passwords(app, approver):
    accounts.set_password(approver, NEW_PASSWORD, keep_previous_for=timedelta(hours=2))
    assert Account.get_by_id(approver.id).previous_password_hash is None


def test_the_command_keeps_the_old_password_for_the_hours_given(runner, client, api_account):
    result = runner.invoke(args=["users", "set-password", "epm", "--password-stdin", "--keep-previous-hours", "4"],
                           input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert post(client, factories.PASSWORD).status_code == 200
    assert post(client, NEW_PASSWORD).status_code == 200
