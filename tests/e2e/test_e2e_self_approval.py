"""Nobody approves their own request, tried against the running service: an approver account named like the
EPM user who asked approves through the JSON API (HTTP Basic) and through the browser form."""
import re

import pytest
import requests

from app import contract
from app.audit.models import AuditEntry
from app.decisions.service import SELF_APPROVAL_REFUSED
from app.models import Account, Decision, Task
from tests import factories
from tests.live import LiveServer, connected_epm
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
REQUESTER = "CORP\\MRivera"


@pytest.fixture
def loop(app, database_url, api_account):
    """A gunicorn broker and a fake EPM that knows it; `mrivera` is an approver and the EPM user who asks."""
    factories.account("mrivera", contract.ROLE_USER)
    with LiveServer(database_url, workers=2) as server:
        with connected_epm(server, auto_finalize=True) as fake:
            yield server, fake


def _ticket(fake, user=REQUESTER):
    request_id = fake.fire_application_request(user=user)
    wait_until(lambda: Task.get_or_none(Task.request_id == request_id) is not None
               and Task.get(Task.request_id == request_id).approvals_required is not None,
               message="the ticket and its policy evaluation")
    return Task.get(Task.request_id == request_id)


def _approve_over_api(server, number, user="mrivera"):
    return requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{number}/decision",
                         auth=(user, factories.PASSWORD), timeout=30,
                         json={"decision": "Approved", "reason": "my own request", "duration_unit": "Once"})


def _browser(server, user="mrivera"):
    session = requests.Session()
    page = session.get(f"{server.url}/sign-in", timeout=30).text
    answer = session.post(f"{server.url}/sign-in", timeout=30, data={
        "csrf_token": _TOKEN.search(page).group(1), "username": user, "password": factories.PASSWORD})
    assert answer.status_code == 200 and "/sign-in" not in answer.url, answer.url
    return session


def _approve_over_form(server, session, number, reason="my own request"):
    url = f"{server.url}/tickets/{number}/approve"
    page = session.get(url, timeout=30).text
    return session.post(url, timeout=30, data={"csrf_token": _TOKEN.search(page).group(1), "reason": reason,
                                               "duration_unit": "Once", "duration_value": ""})


def _refusals(number):
    return AuditEntry.select().where(AuditEntry.action == SELF_APPROVAL_REFUSED, AuditEntry.object_id == number)


def test_the_requester_cannot_approve_their_own_request_over_the_json_api(loop):
    server, fake = loop
    task = _ticket(fake)

    answer = _approve_over_api(server, task.number)

    assert answer.status_code == 409
    assert answer.json()["error"]["message"] == contract.MSG_SELF_APPROVAL
    assert Decision.select().where(Decision.task == task).count() == 0
    assert fake.received_count == 0
    [entry] = _refusals(task.number)
    assert entry.actor == "mrivera"
    assert entry.detail["requester"] == REQUESTER


def test_the_requester_cannot_approve_their_own_request_through_the_browser_form(loop):
    server, fake = loop
    task = _ticket(fake)
    browser = _browser(server)

    answer = _approve_over_form(server, browser, task.number)

    assert answer.status_code == 409
    assert "You asked for this access yourself" in answer.text
    assert Decision.select().where(Decision.task == task).count() == 0
    assert _refusals(task.number).count() == 1


def test_the_requester_named_by_e_mail_matches_the_accounts_e_mail(loop):
    server, fake = loop
    factories.account("maria", contract.ROLE_USER)
    Account.update(email="Maria.Rivera@corp.example").where(Account.username == "maria").execute()
    task = _ticket(fake, user="maria.rivera@corp.example")

    answer = _approve_over_api(server, task.number, user="maria")

    assert answer.status_code == 409
    assert Decision.select().where(Decision.task == task).count() == 0


def test_the_requester_may_deny_their_own_request(loop):
    server, fake = loop
    task = _ticket(fake)

    answer = requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{task.number}/decision",
                           auth=("mrivera", factories.PASSWORD), timeout=30,
                           json={"decision": "Denied", "reason": "I do not need it after all"})

    assert answer.status_code in (201, 202), answer.text
    assert _refusals(task.number).count() == 0


def test_another_approver_approves_as_before(loop):
    server, fake = loop
    factories.account("alice", contract.ROLE_USER)
    task = _ticket(fake)

    answer = _approve_over_api(server, task.number, user="alice")

    assert answer.status_code in (201, 202), answer.text
    assert Decision.select().where(Decision.task == task).count() == 1


def test_with_the_setting_on_the_requester_approves_and_turning_it_on_is_audited(loop, runner):
    server, fake = loop
    result = runner.invoke(args=["config", "set", "allow_self_approval=true"])
    assert result.exit_code == 0, result.output
    [change] = AuditEntry.select().where(AuditEntry.action == "configuration_change")
    assert change.detail["allow_self_approval"] == {"old": False, "new": True}
    api_task, form_task = _ticket(fake), _ticket(fake)

    over_api = _approve_over_api(server, api_task.number)
    over_form = _approve_over_form(server, _browser(server), form_task.number)

    assert over_api.status_code in (201, 202), over_api.text
    assert over_form.status_code == 200 and over_form.history, over_form.status_code
    assert Decision.select().where(Decision.task.in_([api_task, form_task])).count() == 2
    assert _refusals(api_task.number).count() == _refusals(form_task.number).count() == 0


def test_the_setting_is_offered_off_among_the_policies_on_the_configuration_page(loop):
    server, _fake = loop
    factories.account("root", contract.ROLE_ADMIN)

    page = _browser(server, user="root").get(f"{server.url}/admin/configuration", timeout=30).text

    policies, retention = page.index('id="group-policies"'), page.index('id="group-retention"')
    field = re.search(r'<input[^>]*name="allow_self_approval"[^>]*>', page)
    assert field and policies < field.start() < retention
    assert "checked" not in field.group(0)
