"""bench.instructions' driver: what valgrind counts is real deliveries made into tickets."""
import pytest

from app.models import Account, IncomingRequest, Task
from bench import broker, instructions


def test_the_driver_makes_each_created_delivery_its_ticket_and_each_update_finalizes_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'instructions.db'}"
    broker.prepare(url)
    instructions.deliver(url, 10)

    with broker.broker_app(url):
        deliveries = instructions.WARM_UP + 10
        assert IncomingRequest.select().count() == deliveries
        assert Task.select().count() == deliveries // 2
        assert {row.status for row in IncomingRequest.select()} == {"processed"}


def test_the_driver_stops_when_a_delivery_is_not_answered_200(tmp_path):
    url = f"sqlite:///{tmp_path / 'no_api_account.db'}"
    broker.prepare(url)
    with broker.broker_app(url):
        Account.delete().where(Account.username == broker.API_USER).execute()
    with pytest.raises(SystemExit, match="not only 200"):
        instructions.deliver(url, 1)


def test_without_valgrind_the_count_says_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SystemExit, match="valgrind is not installed"):
        instructions.count("sqlite:///unused.db", 1)
