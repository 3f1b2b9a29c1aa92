"""Operators' commands for EPM delivery: test-connection, outbox list and retry-all."""
import pytest

from app import contract
from app.configuration import update_configuration
from app.decisions.service import decide
from app.epm.fake import FakeEpm
from app.models import Decision, Task
from tests import factories


@pytest.fixture
def fake_epm(app):
    with FakeEpm() as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake


def test_test_connection_prints_connection_ok(runner, fake_epm):
    result = runner.invoke(args=["test-connection"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Connection OK"


def test_test_connection_names_a_wrong_secret_and_exits_non_zero(runner, fake_epm):
    update_configuration({"client_secret": "not-the-secret"})
    result = runner.invoke(args=["test-connection"])
    assert result.exit_code != 0
    assert "not-the-secret" not in result.output
    assert "client" in result.output.lower()


def test_test_connection_without_a_host_says_so(runner):
    result = runner.invoke(args=["test-connection"])
    assert result.exit_code != 0
    assert "PMC Service Host Name" in result.output


def test_outbox_list_and_retry_all_deliver_waiting_decisions_once(runner, fake_epm, deliver, approver):
    numbers = [deliver(factories.admin_request()).json["result"]["ticket"] for _ in range(2)]
    fake_epm.fail_next(2, 503)
    for number in numbers:
        decide(Task.get(Task.number == number), approver, "Denied", "outage", ticket_url="http://broker/t")
    listed = runner.invoke(args=["outbox", "list"]).output
    assert all(number in listed for number in numbers)
    assert listed.count(contract.DELIVERY_PENDING) == 2
    result = runner.invoke(args=["outbox", "retry-all"])
    assert result.exit_code == 0
    assert "2 pending decisions attempted" in result.output
    assert {d.status for d in Decision.select()} == {contract.DELIVERY_DELIVERED}
    assert fake_epm.applied_count == 2
    assert runner.invoke(args=["outbox", "list"]).output.strip() == "The outbox is empty."
    assert "delivered" in runner.invoke(args=["outbox", "list", "--all"]).output
