"""Provider accounts: the role a groups claim gives, and the account (issuer, subject) signs in."""
import pytest

from app import contract
from app.audit.models import AuditEntry
from app.auth import oidc
from app.auth.accounts import set_password
from app.auth.step_up import approval_needs_step_up, is_fresh
from app.errors import BadRequest
from app.models import Account
from app.settings import Settings
from tests import factories

ISSUER = "https://login.example.com/tenant"


def settings(**values):
    return Settings.load(environ={}, overrides={"oidc_issuer": ISSUER, "oidc_client_id": "broker",
                                                "oidc_admin_groups": "jit-admins, platform-admins",
                                                "oidc_approver_groups": "jit-approvers", **values})


@pytest.mark.parametrize(("groups", "role"), [
    (["jit-admins"], contract.ROLE_ADMIN),
    (["platform-admins", "staff"], contract.ROLE_ADMIN),
    (["jit-approvers"], contract.ROLE_USER),
    (["jit-approvers", "jit-admins"], contract.ROLE_ADMIN),
    ("jit-approvers", contract.ROLE_USER),
    (["finance"], None),
    ([], None),
    (None, None),
    ({"jit-admins": True}, None),
    (["JIT-ADMINS"], None),
])
def test_the_groups_claim_gives_the_role_admin_first(groups, role):
    claims = {"sub": "s1"} if groups is None else {"sub": "s1", "groups": groups}
    assert oidc.role_for_claims(claims, settings()) == role


def test_another_roles_claim_is_read_when_configured():
    claims = {"groups": ["jit-admins"], "roles": ["jit-approvers"]}
    assert oidc.role_for_claims(claims, settings(oidc_roles_claim="roles")) == contract.ROLE_USER


def test_entra_group_object_ids_match_as_configured():
    object_id = "7f3c1c52-7a1e-4c55-9a3e-8f0b7a4e2d11"
    assert oidc.role_for_claims({"groups": [object_id]}, settings(oidc_admin_groups=object_id)) == contract.ROLE_ADMIN


@pytest.mark.parametrize(("claims", "name"), [
    ({"sub": "s", "preferred_username": "ana.lopez"}, "ana.lopez"),
    ({"sub": "s", "preferred_username": "Ana Lopez", "email": "ana@x"}, "Ana_Lopez"),
    ({"sub": "s", "email": "ana@example.com"}, "ana@example.com"),
    ({"sub": "00u1abc"}, "00u1abc"),
    ({"sub": "s", "preferred_username": "   "}, "s"),
])
def test_the_display_name_falls_back_to_e_mail_then_subject(claims, name):
    assert oidc.display_name(claims, settings()) == name


def test_the_button_names_the_issuers_host_unless_labelled():
    assert oidc.button_label(settings()) == "login.example.com"
    assert oidc.button_label(settings(oidc_button_label="Okta")) == "Okta"


def test_scopes_always_ask_for_openid():
    assert oidc.scope_list(settings(oidc_scopes="profile,email offline_access")) == [
        "openid", "profile", "email", "offline_access"]


def _claims(sub="00u1", groups=("jit-approvers",), **extra):
    return {"iss": ISSUER, "sub": sub, "preferred_username": "bo", "email": "bo@example.com",
            "groups": list(groups), **extra}


def test_first_sign_in_creates_an_account_keyed_on_issuer_and_subject(app):
    account = oidc.sign_in_account(_claims(), settings())
    assert (account.idp_issuer, account.idp_subject, account.username, account.role, account.email) == (
        ISSUER, "00u1", "bo", contract.ROLE_USER, "bo@example.com")
    assert account.password_hash == oidc.NO_PASSWORD
    actions = [entry.action for entry in AuditEntry.select().order_by(AuditEntry.id)]
    assert actions == ["user_create", oidc.ROLE_FROM_PROVIDER, "sign_in"]


def test_the_role_follows_the_groups_at_every_sign_in_and_a_rename_keeps_the_account(app):
    first = oidc.sign_in_account(_claims(), settings())
    again = oidc.sign_in_account(_claims(groups=["jit-admins"], preferred_username="bo.renamed"), settings())
    assert again.id == first.id and again.role == contract.ROLE_ADMIN
    entry = AuditEntry.select().where(AuditEntry.action == oidc.ROLE_FROM_PROVIDER).order_by(AuditEntry.id.desc()).get()
    assert entry.detail == {"role": contract.ROLE_ADMIN, "previous": contract.ROLE_USER}


def test_the_same_subject_at_another_issuer_is_another_account(app):
    first = oidc.sign_in_account(_claims(), settings())
    other = oidc.sign_in_account({**_claims(), "iss": "https://other.example.com"}, settings())
    assert other.id != first.id and other.username == "bo@other.example.com"


def test_a_local_account_of_the_same_name_is_left_alone(app):
    local = factories.account("bo", contract.ROLE_ADMIN)
    account = oidc.sign_in_account(_claims(), settings())
    assert account.id != local.id and account.username == "bo@login.example.com"
    assert Account.get_by_id(local.id).password_hash == local.password_hash


def test_a_person_in_no_group_gets_no_account_and_an_audit_entry(app):
    with pytest.raises(oidc.NoAccess):
        oidc.sign_in_account(_claims(groups=["finance"]), settings())
    assert Account.select().where(Account.idp_subject == "00u1").count() == 0
    entry = AuditEntry.get(AuditEntry.action == oidc.SIGN_IN_DENIED)
    assert entry.actor == "bo" and entry.detail["groups"] == ["finance"]


def test_a_deactivated_provider_account_stays_out(app):
    account = oidc.sign_in_account(_claims(), settings())
    Account.change(account.id, active=False)
    with pytest.raises(oidc.NoAccess):
        oidc.sign_in_account(_claims(), settings())


def test_a_re_check_without_the_groups_ends_every_session(app):
    account = oidc.sign_in_account(_claims(), settings())
    assert oidc.apply_recheck(account, _claims(groups=["jit-admins"]), settings())
    assert Account.get_by_id(account.id).role == contract.ROLE_ADMIN
    epoch = Account.get_by_id(account.id).session_epoch
    assert not oidc.apply_recheck(Account.get_by_id(account.id), _claims(groups=[]), settings())
    assert Account.get_by_id(account.id).session_epoch == epoch + 1


def test_a_provider_account_never_gets_a_local_password(app):
    account = oidc.sign_in_account(_claims(), settings())
    with pytest.raises(BadRequest, match="identity provider"):
        set_password(account, "a-long-enough-password")


def test_step_up_is_for_admin_access_approvals_by_provider_accounts(app, make_ticket):
    admin_ticket = make_ticket(factories.admin_request(request_id="su-1"))
    application_ticket = make_ticket(factories.application_request(request_id="su-2"))
    provider_account = oidc.sign_in_account(_claims(), settings())
    local = factories.account("jchen", contract.ROLE_USER)
    assert approval_needs_step_up(provider_account, admin_ticket)
    assert not approval_needs_step_up(provider_account, application_ticket)
    assert not approval_needs_step_up(local, admin_ticket)


@pytest.mark.parametrize(("auth_time", "fresh"), [
    (1000, True), (700, True), (699, False), (None, False), ("1000", False)])
def test_an_authentication_is_fresh_within_max_age(auth_time, fresh):
    assert is_fresh(auth_time, 300, now=1000) is fresh


def test_a_max_age_of_zero_steps_up_before_every_admin_access_approval():
    assert not is_fresh(1000, 0, now=1000)
