"""Nobody approves their own request unless the configuration allows it; a self-denial is let through."""
import pytest

from app import contract
from app.audit.models import AuditEntry
from app.decisions import service as decisions
from app.errors import Conflict
from app.models import Account, AdminTicket, Configuration, Decision, Task
from tests import factories
from tests.conftest import basic_auth
from tests.decisions.conftest import APPLICATION_URL

API = "/api/x_bets_pmc_jit"


@pytest.fixture
def ticket(deliver):
    """A request EPM says CORP\\mrivera made (the fixture's user)."""
    number = deliver(factories.application_request(request_id="self-1")).json["result"]["ticket"]
    return Task.get(Task.number == number)


def _account(username, email=""):
    account = factories.account(username, contract.ROLE_USER)
    Account.update(email=email).where(Account.id == account.id).execute()
    return Account.get_by_id(account.id)


@pytest.mark.parametrize(("username", "email"), [
    ("mrivera", ""), ("MRIVERA", ""), ("CORP\\mrivera", ""), ("mrivera@corp.example", ""),
    ("maria", "mrivera@corp.example"),
])
def test_an_account_matching_the_requester_is_the_requester(app, ticket, username, email):
    Task.update(requester="mrivera@corp.example" if email else "CORP\\mrivera").where(Task.id == ticket.id).execute()
    assert decisions.is_own_request(_account(username, email), Task.get_by_id(ticket.id))


@pytest.mark.parametrize(("username", "email"), [("mriver", ""), ("jchen", ""), ("maria", "maria@corp.example")])
def test_other_accounts_are_not_the_requester(app, ticket, username, email):
    assert not decisions.is_own_request(_account(username, email), ticket)


def test_an_admin_request_names_its_user_on_the_jit_record_too(app, deliver):
    number = deliver(factories.admin_request(request_id="self-adm")).json["result"]["ticket"]
    task = Task.get(Task.number == number)
    Task.update(requester="").where(Task.id == task.id).execute()
    AdminTicket.update(user_name="CORP\\mrivera").where(AdminTicket.task == task).execute()
    assert decisions.is_own_request(_account("mrivera"), Task.get_by_id(task.id))


def test_an_empty_e_mail_never_matches_a_requester_without_a_name(app, ticket):
    Task.update(requester="").where(Task.id == ticket.id).execute()
    assert not decisions.is_own_request(_account("nobody"), Task.get_by_id(ticket.id))


def test_a_self_approval_is_refused_and_audited_and_nothing_is_stored(app, epm, ticket):
    with pytest.raises(Conflict) as refused:
        decisions.decide(ticket, _account("mrivera"), "Approved", "mine", "once")
    assert refused.value.message == contract.MSG_SELF_APPROVAL
    assert Decision.select().count() == 0
    [entry] = AuditEntry.select().where(AuditEntry.action == decisions.SELF_APPROVAL_REFUSED)
    assert (entry.actor, entry.object_id) == ("mrivera", ticket.number)


def test_a_self_denial_is_let_through(app, epm, ticket):
    epm.post(APPLICATION_URL, json={})
    decision = decisions.decide(ticket, _account("mrivera"), "Denied", "not needed")
    assert decision.decision == contract.DECISION_DENIED


def test_the_setting_allows_a_self_approval(app, epm, ticket):
    epm.post(APPLICATION_URL, json={})
    Configuration.default()
    Configuration.update(allow_self_approval=True).execute()
    decision = decisions.decide(ticket, _account("mrivera"), "Approved", "small team", "once")
    assert decision.decision == contract.DECISION_APPROVED
    assert AuditEntry.select().where(AuditEntry.action == decisions.SELF_APPROVAL_REFUSED).count() == 0


def test_the_json_api_answers_409_with_the_message(client, epm, ticket):
    _account("mrivera")
    response = client.post(f"{API}/tickets/{ticket.number}/decision", headers=basic_auth("mrivera", factories.PASSWORD),
                           json={"decision": "Approved", "reason": "mine", "duration_unit": "once"})
    assert response.status_code == 409, response.json
    assert response.json["error"]["message"] == contract.MSG_SELF_APPROVAL


def test_an_identity_provider_account_is_matched_by_its_e_mail_claim(app, epm, ticket):
    """The provider's e-mail claim is the account's e-mail: a self-approval is refused whatever the account is named."""
    from app.auth import oidc
    from app.settings import Settings
    Task.update(requester="mrivera@corp.example").where(Task.id == ticket.id).execute()
    provider = Settings.load(environ={}, overrides={"oidc_issuer": "https://login.example.com", "oidc_client_id": "b",
                                                    "oidc_approver_groups": "approvers"})
    account = oidc.sign_in_account({"iss": provider.oidc_issuer, "sub": "00u9", "preferred_username": "maria.r",
                                    "email": "mrivera@corp.example", "groups": ["approvers"]}, provider)
    with pytest.raises(Conflict) as refused:
        decisions.decide(Task.get_by_id(ticket.id), account, "Approved", "mine", "once")
    assert refused.value.message == contract.MSG_SELF_APPROVAL
    assert Decision.select().count() == 0
