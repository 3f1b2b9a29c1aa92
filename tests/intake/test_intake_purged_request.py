"""A RequestId whose closed ticket the retention purge deleted: EPM sending its events again opens no new ticket
(approvers would decide the request again, and EPM would get a second decision); each delivery is stored as a
duplicate saying why, and answered 200 as any duplicate is, so EPM does not send it again."""
from app import contract
from app.models import IncomingRequest, PurgedRequest, Task
from tests import factories
from tests.purging import purge_tickets

REQUEST_ID = "0f9d2c4e-5b6a-4d3e-9f8a-7b6c5d4e3f21"


def decided_and_purged(deliver, created, decided):
    """`created` and `decided` delivered, then the ticket they made purged; returns the ticket's number."""
    deliver(created)
    assert deliver(decided).json["result"]["status"] == contract.INCOMING_PROCESSED
    [number] = purge_tickets()
    return number


def test_a_created_event_sent_again_after_retention_deleted_its_ticket_opens_none(deliver):
    number = decided_and_purged(deliver, factories.application_request(REQUEST_ID),
                                factories.application_decision(REQUEST_ID))

    answer = deliver(factories.application_request(REQUEST_ID))

    assert answer.status_code == 200, answer.get_data(as_text=True)
    result = answer.json["result"]
    assert (result["status"], result["ticket"]) == (contract.INCOMING_DUPLICATE, None)
    assert Task.select().count() == 0, "no second ticket for a request EPM already saw decided"
    stored = IncomingRequest.get(IncomingRequest.sys_id == result["incoming_request"])
    assert (stored.status, stored.request_id, stored.task_id) == (contract.INCOMING_DUPLICATE, REQUEST_ID, None)
    assert stored.processed_at is not None and stored.raw_body is not None
    assert f"its ticket {number} was closed and then deleted by retention on " in stored.error


def test_an_update_sent_again_after_retention_deleted_its_ticket_does_not_wait_for_one(deliver):
    number = decided_and_purged(deliver, factories.admin_request(REQUEST_ID), factories.admin_decision(REQUEST_ID))

    result = deliver(factories.admin_decision(REQUEST_ID)).json["result"]

    assert (result["status"], result["ticket"]) == (contract.INCOMING_DUPLICATE, None), \
        "not `received`, waiting for a created event that opens no ticket"
    stored = IncomingRequest.get(IncomingRequest.sys_id == result["incoming_request"])
    assert f"its ticket {number} was closed and then deleted by retention" in stored.error
    again = deliver(factories.admin_request(REQUEST_ID)).json["result"]
    assert (again["status"], again["ticket"]) == (contract.INCOMING_DUPLICATE, None)
    assert Task.select().count() == 0


def test_a_request_of_the_other_kind_or_a_new_request_id_still_becomes_a_ticket(deliver):
    decided_and_purged(deliver, factories.application_request(REQUEST_ID), factories.application_decision(REQUEST_ID))
    assert PurgedRequest.find(contract.KIND_APPLICATION, REQUEST_ID) is not None

    for body in (factories.admin_request(REQUEST_ID), factories.application_request()):
        result = deliver(body).json["result"]
        assert (result["status"], bool(result["ticket"])) == (contract.INCOMING_PROCESSED, True), body
    assert Task.select().count() == 2
