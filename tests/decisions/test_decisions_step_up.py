"""Step-up is kept where every approval is recorded: a door that forgets to ask the identity provider again
records nothing (app/auth/step_up.py, app/decisions/approvals.submit_decision)."""
import time

import pytest

from app.auth.step_up import StepUpRequired
from app.decisions import approvals
from app.models import Account, Decision
from tests import factories

OIDC = {"oidc_issuer": "http://127.0.0.1:9/idp", "oidc_client_id": "broker", "oidc_approver_groups": "approvers",
        "oidc_step_up_max_age": 300}


@pytest.fixture
def app_settings():
    return OIDC


@pytest.fixture
def provider_approver(approver):
    Account.update(idp_issuer=OIDC["oidc_issuer"], idp_subject="00u7").where(Account.id == approver.id).execute()
    return Account.get_by_id(approver.id)


def _approve(task, account, authenticated_at):
    return approvals.submit_decision(task, account, "Approved", "needed for the install", "once",
                                     send_now=False, authenticated_at=authenticated_at)


@pytest.mark.parametrize("authenticated_at", [None, time.time() - 3600, "yesterday"],
                         ids=["no provider authentication", "an hour old (past step_up_max_age and sign_in_max_age)",
                              "not a time"])
def test_an_admin_access_approval_by_a_provider_account_needs_a_fresh_authentication(
        epm, make_ticket, provider_approver, authenticated_at):
    task = make_ticket(factories.admin_request("step-up-1"))

    with pytest.raises(StepUpRequired, match="fresh sign-in"):
        _approve(task, provider_approver, authenticated_at)

    assert Decision.select().count() == 0


def test_a_fresh_authentication_records_it(epm, make_ticket, provider_approver):
    task = make_ticket(factories.admin_request("step-up-2"))

    decision = _approve(task, provider_approver, time.time() - 10)

    assert (decision.decision, decision.decided_by) == ("Approved", provider_approver.username)


def test_a_denial_an_application_approval_and_a_local_account_need_none(epm, make_ticket, provider_approver, admin):
    denied = approvals.submit_decision(make_ticket(factories.admin_request("step-up-3")), provider_approver, "Denied",
                                       "not now", send_now=False)
    application = _approve(make_ticket(factories.application_request("step-up-4")), provider_approver, None)
    local = _approve(make_ticket(factories.admin_request("step-up-5")), admin, None)

    assert [denied.decision, application.decision, local.decision] == ["Denied", "Approved", "Approved"]
