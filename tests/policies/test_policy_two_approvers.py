"""Two-person approval: the first approval waits; the second, from someone else, goes to EPM."""
import json

import pytest

from app.models import Task
from app.audit.models import AuditEntry
from app.decisions.approvals import MSG_EVALUATING, MSG_REQUESTER, MSG_SAME_APPROVER
from app.decisions.models import PendingApproval
from tests import factories
from tests.conftest import basic_auth
from tests.policies.conftest import WEBHOOK, application, epm_decisions, notes

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
