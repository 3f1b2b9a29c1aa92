"""The ticket documents: the list API's summaries are built without a marshmallow schema per row and must
still say exactly what TicketSchema says; one ticket's document carries EPM's latest state and a conflicting
update, as /openapi.json describes them."""
import socket

import jsonschema_rs
import pytest

from app import contract
from app.models import Task
from app.openapi.spec import build_spec
from app.settings import Settings, SettingsError
from app.tickets.documents import TicketSchema, ticket_summary, ticket_url
from bench import generate
from tests import factories


def test_perf_ticket_summary_is_what_the_schema_dumps(app):
    generate.generate(50)
    Task.update(closed_at=None).where(Task.id.in_([task.id for task in Task.select()][::2])).execute()
    tasks = list(Task.select())
    assert [ticket_summary(task) for task in tasks] == TicketSchema(many=True).dump(tasks)


def test_without_a_public_url_a_ticket_link_is_this_hosts_name_and_port_in_a_request_or_not(app, make_ticket):
    task = make_ticket()
    expected = f"http://{socket.getfqdn()}:8000/tickets/{task.number}"

    assert app.extensions["settings"].public_url == ""
    assert ticket_url(task) == expected  # reconciliation, a CLI replay, the scheduler: no request to ask
    with app.test_request_context("/", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"}):
        assert ticket_url(task) == expected


@pytest.mark.parametrize("app_settings", [{"public_url": "https://jit.example.com/broker/"}])
def test_a_ticket_link_is_made_from_the_public_url_never_from_the_request(app, make_ticket):
    task = make_ticket()

    with app.test_request_context("/", headers={"Host": "evil.example"}):
        assert ticket_url(task) == f"https://jit.example.com/broker/tickets/{task.number}"


def test_the_port_for_links_comes_from_the_port_gunicorn_is_given():
    assert Settings.load(environ={"PORT": "5100"}).port == 5100
    assert Settings.load(environ={}).port == 8000
    with pytest.raises(SettingsError, match="port must be an integer"):
        Settings.load(environ={"PORT": "http"})


# --- EPM's latest state and a conflicting update in the ticket document (contract/epm.md 5.3) ----

TICKET = "/api/x_bets_pmc_jit/tickets/{}"


def ticket_answer(client, auth, number):
    """The ticket's JSON document, checked against the Ticket schema /openapi.json describes."""
    answer = client.get(TICKET.format(number), headers=auth)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    spec = build_spec()
    validator = jsonschema_rs.Draft202012Validator({"$ref": "#/components/schemas/Ticket",
                                                    "components": spec["components"]})
    errors = [error.message for error in validator.iter_errors(answer.json["result"])]
    assert errors == []
    return answer.json["result"]


def test_a_revoked_approval_reads_revoked_with_the_revocations_decision(app, client, deliver, approver_auth):
    number = deliver(factories.admin_request(request_id="doc-rev")).json["result"]["ticket"]
    deliver(factories.admin_decision("doc-rev"))
    assert ticket_answer(client, approver_auth, number)["epm_decision"]["epm_outcome"] is None
    deliver(factories.admin_revocation("doc-rev"))
    deliver(factories.admin_decision("doc-rev", Timestamp="2026-11-20T15:30:00Z"))  # the approval re-sent

    decision = ticket_answer(client, approver_auth, number)["epm_decision"]

    assert decision == {
        "decision": "Denied", "decision_time": "2026-11-20T15:20:40", "performed_by": "secops-lead",
        "duration": "1800", "start_time": "2026-11-20T15:12:03", "end_time": "2026-11-20T15:20:41", "final": True,
        "epm_outcome": "Revoked", "conflict": None,
    }


def test_an_early_end_reads_ended_early(app, client, deliver, approver_auth):
    number = deliver(factories.admin_request(request_id="doc-end")).json["result"]["ticket"]
    deliver(factories.admin_decision("doc-end"))
    deliver(factories.admin_decision("doc-end", EndTime="2026-11-20T15:25:10Z", Timestamp="2026-11-20T15:25:11Z"))

    decision = ticket_answer(client, approver_auth, number)["epm_decision"]

    assert (decision["decision"], decision["epm_outcome"], decision["end_time"]) == (
        "Approved", "Ended early", "2026-11-20T15:25:10")


def test_a_conflicting_update_is_kept_aside_from_the_decision(app, client, deliver, approver_auth):
    number = deliver(factories.admin_request(request_id="doc-conflict")).json["result"]["ticket"]
    deliver(factories.admin_decision("doc-conflict", Decision="Denied", DecisionPerformedByUser="secops-lead"))
    deliver(factories.admin_decision("doc-conflict", DecisionTime="2026-11-20T15:30:00Z"))

    decision = ticket_answer(client, approver_auth, number)["epm_decision"]

    assert (decision["decision"], decision["performed_by"], decision["epm_outcome"]) == ("Denied", "secops-lead", None)
    conflict = decision["conflict"]
    assert conflict.pop("received_at") is not None
    assert conflict == {"decision": "Approved", "decision_time": "2026-11-20T15:30:00",
                        "end_time": "2026-11-20T15:42:03", "performed_by": "jchen"}


def test_an_application_decision_changed_later_reads_changed(app, client, deliver, approver_auth):
    number = deliver(factories.application_request(request_id="doc-changed")).json["result"]["ticket"]
    deliver(factories.application_decision("doc-changed"))
    deliver(factories.application_decision("doc-changed", Decision="Denied", DecisionTime="2026-11-20T16:00:00Z"))

    decision = ticket_answer(client, approver_auth, number)["epm_decision"]

    assert (decision["decision"], decision["epm_outcome"], decision["conflict"]) == ("Denied", "Changed", None)


def test_a_ticket_without_epms_decision_has_no_outcome_and_no_conflict(app, client, make_ticket, approver_auth):
    decision = ticket_answer(client, approver_auth, make_ticket().number)["epm_decision"]
    assert (decision["final"], decision["epm_outcome"], decision["conflict"]) == (False, None, None)


def test_the_description_documents_the_latest_state_and_the_conflict():
    schemas = build_spec()["components"]["schemas"]
    outcome = schemas["EpmDecision"]["properties"]["epm_outcome"]
    assert outcome["enum"] == [*contract.EPM_OUTCOMES, None]
    assert "Revoked" in outcome["description"] and "re-sent" in outcome["description"]
    conflict = schemas["EpmDecision"]["properties"]["conflict"]
    assert conflict["anyOf"] == [{"$ref": "#/components/schemas/EpmConflict"}, {"type": "null"}]
    assert "contradicted" in conflict["description"]
    assert set(schemas["EpmConflict"]["required"]) == {"decision", "decision_time", "end_time", "performed_by",
                                                       "received_at"}
