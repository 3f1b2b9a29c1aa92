"""Two-person approval: the first approval waits; the second, from someone else, goes to EPM."""
import json
from datetime import timedelta

import pytest
import responses

from app import contract
from app.models import Decision, Task, utcnow
from app.audit.models import AuditEntry
from app.decisions.approvals import MSG_EVALUATING, MSG_REQUESTER, MSG_SAME_APPROVER
from app.decisions.models import APPROVAL_PENDING, APPROVAL_VOID, PendingApproval
from app.jobs import expiry
from tests import factories
from tests.conftest import basic_auth
from tests.policies.conftest import APPLICATION_URL, WEBHOOK, application, epm_decisions, notes

APPROVAL = {"decision": "Approved", "reason": "Looks fine", "duration_unit": "minutes", "duration_value": 30}


@pytest.fixture
def ticket(http, submit, add_rule):
    add_rule(name="Two for installers", outcome="two_approvers")
    return submit(application("please"))


def as_user(username):
    factories.account(username, "user")
    return basic_auth(username, factories.PASSWORD)


def decide(client, ticket, auth, body=APPROVAL):
    return client.post(f"/api/x_bets_pmc_jit/tickets/{ticket.number}/decision", json=body, headers=auth)


def test_the_first_approval_is_recorded_and_nothing_goes_to_epm(http, client, ticket):
    answer = decide(client, ticket, as_user("jchen"))

    assert answer.status_code == 202
    assert answer.json["result"]["pending_approval"]["approver"] == "jchen"
    assert epm_decisions(http) == []
    assert ticket.decisions.count() == 0
    assert any("First approval by jchen" in note for note in notes(ticket))


def test_the_second_approval_by_someone_else_goes_to_epm(http, client, ticket):
    decide(client, ticket, as_user("jchen"))

    answer = decide(client, ticket, as_user("akim"), {**APPROVAL, "reason": "Agreed"})

    assert answer.status_code == 201
    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    assert body["decisionPerformedByUser"] == "akim"
    assert body["duration"] == str(30 * 60)
    assert "first by jchen" in body["message"]
    assert PendingApproval.get().status == "used"


def test_the_same_person_cannot_approve_twice(http, client, ticket):
    auth = as_user("jchen")
    decide(client, ticket, auth)

    again = decide(client, ticket, auth)

    assert again.status_code == 409
    assert again.json["error"]["message"] == MSG_SAME_APPROVER
    assert epm_decisions(http) == []


def test_the_requester_can_approve_neither_first_nor_second(http, client, ticket):
    requester = as_user("mrivera")  # EPM's requester is CORP\mrivera
    first = decide(client, ticket, requester)
    decide(client, ticket, as_user("jchen"))
    second = decide(client, ticket, requester)

    assert first.status_code == second.status_code == 409
    assert first.json["error"]["message"] == MSG_REQUESTER
    assert epm_decisions(http) == []
    refusals = AuditEntry.select().where(AuditEntry.action == "self_approval_refused")
    assert [(entry.actor, entry.object_id) for entry in refusals] == [("mrivera", ticket.number)] * 2


def test_one_approver_may_deny(http, client, ticket):
    answer = decide(client, ticket, as_user("jchen"), {"decision": "Denied", "reason": "Not now"})

    assert answer.status_code == 201
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]


def test_without_the_rule_one_approval_is_enough(http, client, submit):
    task = submit(application("please"))

    answer = decide(client, task, as_user("jchen"))

    assert answer.status_code == 201
    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]


def test_the_browser_form_records_the_first_approval(http, ticket, web):
    factories.account("jchen", "user")
    web.sign_in("jchen")

    answer = web.post(f"/tickets/{ticket.number}/approve", {"reason": "Fine", "duration_unit": "once"},
                      follow_redirects=True)

    assert "First approval recorded" in answer.get_data(as_text=True)
    assert epm_decisions(http) == []
    assert PendingApproval.get().approver == "jchen"


def test_nobody_can_approve_before_the_policies_have_run(http, client, api_auth, add_rule):
    add_rule(name="Two for installers", outcome="two_approvers")
    delivery = client.post(WEBHOOK, data=json.dumps(application("please")), content_type="application/json",
                           headers=api_auth)  # answered, not yet closed: the evaluation is still queued
    task = Task.get(Task.number == delivery.json["result"]["ticket"])

    jchen = as_user("jchen")
    early = decide(client, task, jchen)
    delivery.close()  # the policies run: two approvers are required
    first = decide(client, task, jchen)

    assert early.status_code == 409
    assert early.json["error"]["message"] == MSG_EVALUATING
    assert first.status_code == 202
    assert epm_decisions(http) == []
    assert task.decisions.count() == 0


def test_upgrading_keeps_what_each_ticket_requires_of_approvers(http, client, submit, add_rule):
    import peewee
    from playhouse.migrate import SchemaMigrator, migrate

    from app.db import database
    from app.migrations import MIGRATIONS, _approvals_on_the_ticket, upgrade
    from app.models import SchemaVersion
    from app.policies.models import PolicyEvaluation

    alone = submit(application("no rule yet"))
    add_rule(name="Two for installers", outcome="two_approvers")
    two, queued = submit(application("first")), submit(application("second"))
    # The database as it was: the number of approvers on the evaluation, none on the ticket.
    evaluations = PolicyEvaluation._meta.table_name
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(migrator.drop_column(Task._meta.table_name, "approvals_required"),
            migrator.add_column(evaluations, "required_approvals", peewee.IntegerField(default=1)))
    database.execute_sql(f"UPDATE {evaluations} SET required_approvals = 2")
    PolicyEvaluation.update(status="pending").where(PolicyEvaluation.task == queued).execute()
    [(version, description)] = [(number, text) for number, text, step in MIGRATIONS
                                if step is _approvals_on_the_ticket]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]

    assert "required_approvals" not in {column.name for column in database.get_columns(evaluations)}
    jchen = as_user("jchen")
    assert decide(client, alone, jchen).status_code == 201
    assert decide(client, two, jchen).status_code == 202
    assert decide(client, queued, jchen).json["error"]["message"] == MSG_EVALUATING
    assert [body["decisionPerformedByUser"] for body in epm_decisions(http)] == ["jchen"]


def test_a_long_first_reason_leaves_the_second_approver_their_own_limit(http, client, ticket):
    first_reason, second_reason = "a" * contract.MAX_REASON_LENGTH, "b" * contract.MAX_REASON_LENGTH
    decide(client, ticket, as_user("jchen"), {**APPROVAL, "reason": first_reason})

    answer = decide(client, ticket, as_user("akim"), {**APPROVAL, "reason": second_reason})

    assert answer.status_code == 201
    [body] = epm_decisions(http)
    assert body["message"] == f"{second_reason} (second approval; first by jchen: {first_reason})"
    assert Decision.get().reason == body["message"]


def test_the_second_approvers_own_reason_is_held_to_the_limit(http, client, ticket):
    decide(client, ticket, as_user("jchen"))

    answer = decide(client, ticket, as_user("akim"), {**APPROVAL, "reason": "b" * (contract.MAX_REASON_LENGTH + 1)})

    assert answer.status_code == 400
    assert answer.json["error"]["message"] == contract.MSG_REASON_TOO_LONG
    assert PendingApproval.get().status == APPROVAL_PENDING


def test_a_denial_voids_the_first_approval_so_approving_after_epm_refused_it_takes_two_again(http, client, ticket):
    decide(client, ticket, as_user("jchen"))
    http.replace(responses.POST, APPLICATION_URL, status=400, json={"message": "itsmRequestId unknown"})
    denied = decide(client, ticket, as_user("akim"), {"decision": "Denied", "reason": "Not now"})
    assert denied.json["result"]["decision"]["delivery_status"] == contract.DELIVERY_FAILED  # decidable again
    http.replace(responses.POST, APPLICATION_URL, json={})

    again = decide(client, ticket, as_user("mlee"))

    assert again.status_code == 202  # a first approval, not the second of jchen's
    assert [body["decision"] for body in epm_decisions(http)] == ["Denied"]
    approvals = PendingApproval.select().order_by(PendingApproval.id)
    assert [(approval.approver, approval.status) for approval in approvals] == [
        ("jchen", APPROVAL_VOID), ("mlee", APPROVAL_PENDING)]


def test_an_expired_request_voids_its_first_approval(http, client, ticket):
    decide(client, ticket, as_user("jchen"))
    Task.update(opened_at=utcnow() - timedelta(hours=30)).where(Task.id == ticket.id).execute()

    assert expiry.expire_pending(hours=24) == 1

    assert PendingApproval.get().status == APPROVAL_VOID


def test_upgrading_voids_first_approvals_left_beside_a_later_decision_or_an_expiry(http, client, submit, ticket):
    from app.migrations import MIGRATIONS, _void_settled_first_approvals, upgrade
    from app.models import SchemaVersion

    denied, expired, waiting = ticket, submit(application("second")), submit(application("third"))
    jchen = as_user("jchen")
    for task in (denied, expired, waiting):
        decide(client, task, jchen)
    decide(client, denied, as_user("akim"), {"decision": "Denied", "reason": "Not now"})
    Task.update(expired_at=utcnow()).where(Task.id == expired.id).execute()
    # As an earlier version left them: still waiting for a second approver.
    PendingApproval.update(status=APPROVAL_PENDING).execute()
    [(version, description)] = [(number, text) for number, text, step in MIGRATIONS
                                if step is _void_settled_first_approvals]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]

    statuses = {approval.task_id: approval.status for approval in PendingApproval.select()}
    assert statuses == {denied.id: APPROVAL_VOID, expired.id: APPROVAL_VOID, waiting.id: APPROVAL_PENDING}
