"""Ticket numbers: the type's prefix and the counter in at least 7 digits, the same on both databases
(PostgreSQL takes the number and inserts the ticket in one statement, SQLite in two)."""
from app import contract
from app.models import NumberCounter, Task
from tests import factories


def test_the_first_ticket_of_a_type_starts_its_counter(deliver):
    assert deliver(factories.admin_request("req-first")).json["result"]["ticket"] == "INC0010001"
    assert NumberCounter.get_by_id(contract.INCIDENT.table).next_number == 10002


def test_numbers_go_on_past_seven_digits(deliver):
    deliver(factories.admin_request("req-first"))
    NumberCounter.update(next_number=9_999_999).where(NumberCounter.table == contract.INCIDENT.table).execute()

    answers = [deliver(factories.application_request(f"req-{index}")).json["result"]["ticket"] for index in range(2)]

    assert answers == ["INC9999999", "INC10000000"]
    assert answers == [contract.INCIDENT.format_number(counter) for counter in (9_999_999, 10_000_000)]
    assert sorted(task.number for task in Task.select().where(Task.number.in_(answers))) == sorted(answers)


def test_a_duplicate_delivery_takes_no_number(deliver):
    body = factories.admin_request("req-twice")
    assert deliver(body).json["result"]["ticket"] == "INC0010001"
    assert deliver(body).json["result"]["status"] == contract.INCOMING_DUPLICATE
    assert deliver(factories.admin_request("req-next")).json["result"]["ticket"] == "INC0010002"
