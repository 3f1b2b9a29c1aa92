"""Every destructive action the admin pages offer asks first, naming what will happen: the action's own POST
without confirmation answers the confirmation and changes nothing; Confirm does it; Cancel leaves everything."""
from html.parser import HTMLParser
from typing import Callable, NamedTuple

import pytest
from markupsafe import escape

from app import contract
from app.audit.models import AuditEntry
from app.itsm.connections import create_connection
from app.itsm.models import ItsmConnection
from app.models import Account, Decision, IncomingRequest, Task
from app.policies import bypass
from app.policies import rules as policy_rules
from app.policies.models import PolicyRule
from app.web.confirmation import CONFIRM_FIELD, CONFIRM_VALUE
from tests import factories


class Destructive(NamedTuple):
    """One destructive action: where its button posts, what it sends, what the confirmation must say,
    and whether it happened."""

    path: str
    form: dict
    question: str
    consequence: str
    done: Callable[[], bool]


class Forms(HTMLParser):
    """The forms of a page as a browser sees them: (action, {name: value}) for each, hidden fields included."""

    def __init__(self, page):
        super().__init__()
        self.forms, self.links = [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append((attrs.get("action"), {}))
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1][1][attrs["name"]] = attrs.get("value", "")
        elif tag == "a":
            self.links.append((attrs.get("href"), attrs))


def confirming_form(page, path):
    """The fields of the form on `page` that confirms the action at `path`."""
    found = [fields for action, fields in Forms(page).forms
             if action == path and fields.get(CONFIRM_FIELD) == CONFIRM_VALUE]
    assert len(found) == 1, page
    return found[0]


def cancel_link(page):
    links = [href for href, attrs in Forms(page).links if "autofocus" in attrs]
    assert len(links) == 1, page
    return links[0]


def _deactivate(request):
    account = factories.account("alice", contract.ROLE_USER)
    return Destructive(f"/admin/users/{account.id}/active", {"active": "false"}, "Deactivate alice?",
                       "They can no longer sign in, decide requests or call the API; their open sessions end at once.",
                       lambda: not Account.get_by_id(account.id).active)


def _deactivate_api_account(request):
    account = request.getfixturevalue("api_account")
    return Destructive(f"/admin/users/{account.id}/active", {"active": "false"}, f"Deactivate {account.username}?",
                       "EPM can no longer deliver requests with this account",
                       lambda: not Account.get_by_id(account.id).active)


def _reset_password(request):
    account = factories.account("alice", contract.ROLE_USER)
    return Destructive(f"/admin/users/{account.id}/password", {}, "Reset the password of alice?",
                       "alice's current password stops working at once, and their open sessions end.",
                       lambda: Account.get_by_id(account.id).password_hash != account.password_hash)


def _reset_api_password(request):
    account = request.getfixturevalue("api_account")
    return Destructive(f"/admin/users/{account.id}/password", {}, f"Reset the password of {account.username}?",
                       "EPM's webhook deliveries are refused until EPM is given the new one.",
                       lambda: Account.get_by_id(account.id).password_hash != account.password_hash)


def _delete_rule(request):
    rule = policy_rules.create_rule({"name": "Block games", "outcome": "auto_deny"}, "root")
    return Destructive(f"/admin/policies/rules/{rule.id}/delete", {}, "Delete rule 'Block games'?",
                       "the rules below it move up one place",
                       lambda: not PolicyRule.select().where(PolicyRule.id == rule.id).exists())


def _revoke_bypass_code(request):
    record, _code = bypass.issue_code("root", "ITSM outage", True, None)
    return Destructive(f"/admin/policies/bypass/{record.sys_id}/revoke", {}, f"Revoke bypass code …{record.hint}?",
                       "no longer counts as a valid ticket reference",
                       lambda: bypass.status(bypass.find_code(record.sys_id)) == "revoked")


def _delete_itsm_connection(request):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": "https://corp.service-now.com",
                       "username": "svc", "secret": "pw"}, "root")
    return Destructive("/admin/policies/itsm/corp/delete", {}, "Delete ITSM connection 'corp'?",
                       "ticket references are no longer looked up in ServiceNow at https://corp.service-now.com",
                       lambda: not ItsmConnection.select().where(ItsmConnection.name == "corp").exists())


def _replay(request):
    deliver, monkeypatch = request.getfixturevalue("deliver"), request.getfixturevalue("monkeypatch")
    body = factories.admin_request()
    with monkeypatch.context() as unknown:
        unknown.delitem(contract.EVENT_TYPES, contract.ADMIN_TICKET_CREATED.name)
        assert deliver(body).status_code == 400
    incoming = IncomingRequest.get(IncomingRequest.request_id == body["RequestId"])
    return Destructive(f"/admin/incoming/{incoming.sys_id}/replay", {"mode": "apply"}, "Replay this delivery?",
                       f"would create a ticket of type Incident for Admin Access request {body['RequestId']}",
                       lambda: Task.select().count() == 1)


def _retry_all(request):
    request.getfixturevalue("fake_epm")
    task = request.getfixturevalue("make_ticket")()
    decision = Decision.create(task=task, decision="Approved", reason="r", duration_unit="once",
                               duration_sent="Once", decided_by="root", ticket_url="http://x/tickets/1")
    return Destructive("/admin/deliveries/retry", {}, "Send all 1 waiting decision(s) to EPM now?",
                       "Each of the 1 decision(s) EPM has not acknowledged is sent again at once",
                       lambda: Decision.get_by_id(decision.id).attempts > 0)


ACTIONS = {"deactivate": _deactivate, "deactivate-api-account": _deactivate_api_account,
           "reset-password": _reset_password, "reset-api-password": _reset_api_password,
           "delete-rule": _delete_rule, "revoke-bypass-code": _revoke_bypass_code,
           "delete-itsm-connection": _delete_itsm_connection, "replay": _replay, "retry-all": _retry_all}


@pytest.fixture(params=list(ACTIONS))
def action(request, as_admin):
    return ACTIONS[request.param](request)


def test_the_action_without_confirmation_answers_the_confirmation_and_changes_nothing(as_admin, action):
    audited = AuditEntry.select().count()

    answer = as_admin.post(action.path, action.form)

    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert str(escape(action.question)) in page
    assert str(escape(action.consequence)) in page
    assert not action.done()
    assert AuditEntry.select().count() == audited


def test_the_confirmation_sends_the_same_form_again_with_its_csrf_token(as_admin, action):
    page = as_admin.post(action.path, action.form).get_data(as_text=True)

    fields = confirming_form(page, action.path)

    assert fields["csrf_token"]
    assert {name: fields[name] for name in action.form} == action.form


def test_confirming_does_the_action(as_admin, action):
    page = as_admin.post(action.path, action.form).get_data(as_text=True)

    answer = as_admin.request("POST", action.path, data=confirming_form(page, action.path))

    # A reset password is shown on the answer itself; every other action redirects back to its page.
    assert answer.status_code in (200, 302), answer.get_data(as_text=True)
    assert action.done()


def test_cancel_leaves_everything_as_it_was(as_admin, action):
    audited = AuditEntry.select().count()
    page = as_admin.post(action.path, action.form).get_data(as_text=True)

    answer = as_admin.get(cancel_link(page))

    assert answer.status_code == 200
    assert not action.done()
    assert AuditEntry.select().count() == audited


def test_a_confirmation_without_its_csrf_token_is_refused(as_admin, action):
    answer = as_admin.request("POST", action.path, data={**action.form, CONFIRM_FIELD: CONFIRM_VALUE})

    assert answer.status_code == 400
    assert not action.done()


def test_reactivating_an_account_needs_no_confirmation(as_admin):
    account = factories.account("alice", contract.ROLE_USER, active=False)

    assert as_admin.post(f"/admin/users/{account.id}/active", {"active": "true"}).status_code == 302
    assert Account.get_by_id(account.id).active


def test_an_admin_is_not_asked_to_confirm_deactivating_themselves(as_admin, admin):
    answer = as_admin.post(f"/admin/users/{admin.id}/active", {"active": "false"})

    assert answer.status_code == 400
    assert "You cannot deactivate your own account" in answer.get_data(as_text=True)
    assert Account.get_by_id(admin.id).active


def test_the_confirmation_page_is_not_cached(as_admin):
    account = factories.account("alice", contract.ROLE_USER)

    answer = as_admin.post(f"/admin/users/{account.id}/password")

    assert answer.headers["Cache-Control"] == "no-store"


def test_approvers_get_no_confirmation_of_an_admin_action(as_approver):
    account = factories.account("alice", contract.ROLE_USER)

    answer = as_approver.post(f"/admin/users/{account.id}/active", {"active": "false"})

    assert answer.status_code == 403
    assert "Deactivate alice?" not in answer.get_data(as_text=True)
