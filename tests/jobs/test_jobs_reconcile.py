"""Reconciliation against the fake EPM on loopback: what webhooks missed is repaired, once."""
from app import contract
from app.audit.models import AuditEntry
from app.decisions import service as decisions
from app.jobs.reconcile import reconcile
from app.models import AdminTicket, ApplicationAccessTicket, IncomingRequest, Task, WorkNote
from tests import factories


def notes(task):
    return [note.text for note in WorkNote.select().where(WorkNote.task == task).order_by(WorkNote.id)]


def test_a_request_epm_has_but_the_broker_missed_becomes_a_ticket_once(fake_epm):
    application = fake_epm.add_request(contract.KIND_APPLICATION, user="CORP\\dlee")
    admin = fake_epm.add_request(contract.KIND_ADMIN)

    report = reconcile()

    assert [item["request_id"] for item in report.created] == [application["RequestId"], admin["RequestId"]]
    app_jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == application["RequestId"])
    # The fake's list records carry the user and reason, not the host: the ticket has what EPM listed.
    assert app_jit.task.requester == "CORP\\dlee"
    assert app_jit.epm_ticket_number == application["TicketNumber"] and app_jit.tenant_id == application["TenantId"]
    assert app_jit.reason == application["requestInfo"]["reason"]
    assert any("reconciled from EPM" in text for text in notes(app_jit.task))
    admin_jit = AdminTicket.get(AdminTicket.request_id == admin["RequestId"])
    assert admin_jit.task.requester == admin["UserName"] and not admin_jit.decision_final

    again = reconcile()
    assert again.changes == 0 and again.seen == {contract.KIND_APPLICATION: 1, contract.KIND_ADMIN: 1}
    assert Task.select().count() == 2


def test_a_dry_run_reports_without_creating(fake_epm):
    request = fake_epm.add_request(contract.KIND_APPLICATION)
    report = reconcile(dry_run=True)
    assert report.created == [{"kind": contract.KIND_APPLICATION, "request_id": request["RequestId"],
                               "ticket": None, "decision": None}]
    assert "Would create a ticket for application request" in "\n".join(report.lines())
    assert Task.select().count() == 0


def test_a_ticket_reconciled_is_audited(fake_epm):
    fake_epm.add_request(contract.KIND_ADMIN)
    report = reconcile(actor="cli:ops")
    entry = AuditEntry.get(AuditEntry.action == "reconcile_ticket_created")
    assert entry.actor == "cli:ops" and entry.object_id == report.created[0]["ticket"]


def test_a_decision_taken_in_epm_whose_update_was_lost_is_finalized(fake_epm, make_ticket):
    event = fake_epm.add_request(contract.KIND_APPLICATION)
    task = make_ticket(event)  # the created webhook did arrive
    fake_epm.requests[event["RequestId"]].decision = {"decision": "Denied", "decisionPerformedByUser": "epm-admin",
                                                      "duration": "Once"}

    report = reconcile()

    jit = task.jit_request
    assert jit.decision_final and jit.final_decision == "Denied" and jit.final_decision_by == "epm-admin"
    assert report.finalized[0]["why"] == "decided in EPM; its update never arrived"
    assert any("reconciled from EPM" in text for text in notes(task))
    assert reconcile().changes == 0


def test_a_decision_sent_from_here_whose_update_never_came_is_finalized(fake_epm, make_ticket, approver):
    event = fake_epm.add_request(contract.KIND_ADMIN)
    task = make_ticket(event)
    sent = decisions.decide(task, approver, "Approved", "printer driver", "hours", 2, ticket_url="http://b/t")
    assert sent.status == contract.DELIVERY_DELIVERED  # EPM acknowledged; the fake sends no update event
    assert not task.jit_request.decision_final

    report = reconcile()

    jit = task.jit_request
    assert jit.decision_final and jit.final_decision == "Approved" and jit.final_duration == "7200"
    assert report.finalized[0]["why"] == "the update for the decision sent from here never arrived"


def test_a_request_decided_before_its_ticket_existed_is_created_finalized(fake_epm, app):
    from app.configuration import update_configuration

    update_configuration({"auto_close": "true"})
    event = fake_epm.add_request(contract.KIND_APPLICATION)
    fake_epm.requests[event["RequestId"]].decision = {"decision": "Approved", "decisionPerformedByUser": "epm-admin",
                                                      "duration": "3600"}
    reconcile()
    task = Task.get(Task.request_id == event["RequestId"])
    assert task.jit_request.final_decision == "Approved" and task.state == task.ticket_type.closed_state


def test_every_page_of_epm_s_list_is_read(fake_epm):
    for _ in range(201):
        fake_epm.add_request(contract.KIND_ADMIN)
    report = reconcile()
    assert report.seen[contract.KIND_ADMIN] == 201 and len(report.created) == 201
    assert AdminTicket.select().count() == 201


def test_the_reconcile_command_prints_what_it_changed(fake_epm, runner):
    fake_epm.add_request(contract.KIND_APPLICATION)
    dry = runner.invoke(args=["reconcile", "--dry-run"])
    assert dry.exit_code == 0 and "Would create a ticket" in dry.output and "dry run: 1 tickets created" in dry.output
    real = runner.invoke(args=["reconcile"])
    number = Task.get().number
    assert real.exit_code == 0 and f"Created {number}" in real.output
    assert "0 tickets created, 0 decisions finalized" in runner.invoke(args=["reconcile"]).output


def test_the_reconcile_command_explains_a_missing_connection(runner):
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 1 and "PMC Service Host Name" in result.output


class ListingClient:
    """Stands in for EpmClient: one page per kind, with records shaped as a test needs."""

    def __init__(self, application=(), admin=()):
        self.pages = {contract.KIND_APPLICATION: list(application), contract.KIND_ADMIN: list(admin)}

    def list_requests(self, kind, page_size, page_number):
        return {"data": self.pages[kind] if page_number == 1 else [], "pageCount": 1,
                "totalRecordCount": len(self.pages[kind])}


def test_records_are_read_defensively_whatever_the_key_case_and_value_types(app):
    request_id = "3f0c9a52-7d1e-4b8a-9c2f-1a2b3c4d5e6f"
    client = ListingClient(application=[
        {"RequestId": request_id, "TicketNumber": 100999, "Status": "2001", "DecisionPerformedByUser": "lead",
         "requestInfo": {"User": "CORP\\kpatel", "hostName": "LT-1", "productName": "Tool", "uacTriggered": True}},
        {"ticketNumber": "no id here"},
        "not a record",
    ])

    report = reconcile(client)

    jit = ApplicationAccessTicket.get(ApplicationAccessTicket.request_id == request_id)
    assert jit.task.requester == "CORP\\kpatel" and jit.task.subject == "Tool" and jit.epm_ticket_number == "100999"
    assert jit.request_info["uacTriggered"] == "True"
    assert jit.final_decision == "Denied" and jit.final_decision_by == "lead"
    assert len(report.problems) == 2 and "no request id" in report.problems[0]


def test_a_pending_request_is_left_pending(app, deliver):
    body = factories.application_request()
    deliver(body)
    report = reconcile(ListingClient(application=[{"id": body["RequestId"], "status": "Pending"}]))
    assert report.changes == 0 and not Task.get().jit_request.decision_final


def test_an_update_that_arrived_without_its_created_event_is_applied_to_the_reconciled_ticket(fake_epm, deliver):
    event = fake_epm.add_request(contract.KIND_APPLICATION)
    deliver(factories.application_decision(event["RequestId"]))  # the created webhook was lost
    waiting = IncomingRequest.get()
    assert waiting.status == contract.INCOMING_RECEIVED

    reconcile()

    task = Task.get(Task.request_id == event["RequestId"])
    assert task.jit_request.decision_final
    assert IncomingRequest.get_by_id(waiting.id).status == contract.INCOMING_PROCESSED
    assert IncomingRequest.select().count() == 1, "reconciliation stores no delivery of its own"
