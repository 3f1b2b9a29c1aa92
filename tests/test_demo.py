"""`jitbroker demo-setup`: the fake EPM's account and connection, never at an existing account's expense."""
import stat

import pytest
import requests

from app.auth.accounts import password_matches
from app.demo import DEMO_API_ACCOUNT, stored_password
from app.epm.fake import FakeEpm
from app.epm.tokens import clear_token_cache
from app.models import Account, Configuration, Task
from tests import factories
from tests.live import LiveServer, free_port
from tests.waiting import wait_until

FAKE_URL = "http://127.0.0.1:8200"


def demo_setup(runner, env_file):
    return runner.invoke(args=["demo-setup", "--env-file", str(env_file), "--fake-epm-url", FAKE_URL])


def test_demo_setup_creates_the_api_account_and_points_an_unconfigured_broker_at_the_fake(runner, tmp_path):
    env_file = tmp_path / "demo.env"
    result = demo_setup(runner, env_file)
    assert result.exit_code == 0, result.output
    account = Account.by_username(DEMO_API_ACCOUNT)
    assert account.role == "api"
    assert password_matches(account, stored_password(env_file))
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    configuration = Configuration.default()
    assert (configuration.pmc_host, configuration.client_id) == (FAKE_URL, "broker-client")


def test_the_demo_turns_auto_close_on_while_the_real_default_stays_off(runner, tmp_path):
    assert Configuration.default().auto_close is False
    demo_setup(runner, tmp_path / "demo.env")
    assert Configuration.default().auto_close is True


def test_running_demo_setup_again_keeps_the_accounts_password(runner, tmp_path):
    env_file = tmp_path / "demo.env"
    demo_setup(runner, env_file)
    hash_before, password = Account.by_username(DEMO_API_ACCOUNT).password_hash, stored_password(env_file)

    result = demo_setup(runner, env_file)

    assert result.exit_code == 0, result.output
    assert Account.by_username(DEMO_API_ACCOUNT).password_hash == hash_before
    assert stored_password(env_file) == password


def test_an_existing_account_whose_password_is_unknown_is_never_reset(runner, tmp_path):
    factories.account(DEMO_API_ACCOUNT, "api")
    hash_before = Account.by_username(DEMO_API_ACCOUNT).password_hash
    env_file = tmp_path / "demo.env"
    env_file.write_text("FAKE_EPM_WEBHOOK_PASSWORD=not-its-password\n")

    result = demo_setup(runner, env_file)

    assert result.exit_code == 1
    assert "never resets a password" in result.output and "users set-password epm-demo" in result.output
    assert Account.by_username(DEMO_API_ACCOUNT).password_hash == hash_before
    assert env_file.read_text() == "FAKE_EPM_WEBHOOK_PASSWORD=not-its-password\n"
    assert Configuration.default().pmc_host == ""


def test_an_existing_account_of_another_role_is_left_alone(runner, tmp_path):
    factories.account(DEMO_API_ACCOUNT, "admin")
    hash_before = Account.by_username(DEMO_API_ACCOUNT).password_hash

    result = demo_setup(runner, tmp_path / "demo.env")

    assert result.exit_code == 1 and "not an active api account" in result.output
    assert Account.by_username(DEMO_API_ACCOUNT).password_hash == hash_before
    assert Account.by_username(DEMO_API_ACCOUNT).role == "admin"


def test_a_broker_connected_to_a_real_epm_is_left_alone(runner, tmp_path):
    runner.invoke(args=["config", "set", "pmc_host=acme-services.pm.beyondtrustcloud.com"])
    result = demo_setup(runner, tmp_path / "demo.env")
    assert result.exit_code == 0
    assert "leaves it alone" in result.output
    configuration = Configuration.default()
    assert (configuration.pmc_host, configuration.auto_close) == ("acme-services.pm.beyondtrustcloud.com", False)


@pytest.mark.e2e
def test_the_readme_demo_loop_ends_in_a_closed_ticket(app, database_url, runner, tmp_path):
    """demo-setup, then the fake EPM firing at a gunicorn broker as Procfile.demo runs them: an approval
    reaches EPM, EPM's update comes back, and auto-close closes the ticket."""
    fake_port = free_port()
    env_file = tmp_path / "demo.env"
    result = runner.invoke(args=["demo-setup", "--env-file", str(env_file),
                                 "--fake-epm-url", f"http://127.0.0.1:{fake_port}"])
    assert result.exit_code == 0, result.output
    factories.account("anna", "user")
    clear_token_cache()
    with LiveServer(database_url, workers=1) as server:
        with FakeEpm(broker_url=server.url, webhook_user=DEMO_API_ACCOUNT,
                     webhook_password=stored_password(env_file), auto_finalize=True, port=fake_port) as fake:
            assert fake.url == f"http://127.0.0.1:{fake_port}", "the fake listens on loopback only"
            fake.fire_application_request()
            [task] = Task.select()
            answer = requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{task.number}/decision",
                                   auth=("anna", factories.PASSWORD), timeout=30,
                                   json={"decision": "Approved", "reason": "demo", "duration_unit": "once"})
            assert answer.status_code == 201, answer.text
            wait_until(lambda: Task.get_by_id(task.id).closed_at is not None, timeout=30,
                       message="EPM's update to close the ticket")
    clear_token_cache()
