"""Failsafe bypass codes: a quoted valid code counts as a valid ticket; single use, expiry, revocation, audit."""
import re
from datetime import timedelta

import pytest

from app.audit.models import AuditEntry
from app.errors import BadRequest
from app.models import Task, utcnow
from app.policies import bypass
from app.policies.models import BypassCode
from tests.policies.conftest import application, epm_decisions, notes


@pytest.fixture
def approve_rule(add_rule):
    return add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker",
                    max_duration_minutes="60")


def test_an_admin_issues_a_code_from_the_cli(runner):
    result = runner.invoke(args=["policy", "bypass", "issue", "--label", "ServiceNow outage", "--valid-hours", "8"])

    assert result.exit_code == 0, result.output
    code = re.search(r"BYPASS-[A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", result.output).group(0)
    record = BypassCode.get()
    assert record.code_hash == bypass.code_hash(code)
    assert record.single_use and record.label == "ServiceNow outage"
    assert AuditEntry.get(AuditEntry.action == "bypass_code_issue").object_id == record.sys_id


def test_a_quoted_code_approves_for_the_maximum_and_its_use_is_audited(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "outage", single_use=True)

    task = submit(application(f"ITSM is down, bypass {code.lower()}"))

    [body] = epm_decisions(http)
    assert body["decision"] == "Approved"
    assert body["duration"] == str(60 * 60)
    assert any(f"failsafe bypass code …{record.hint}" in note for note in notes(task))
    entry = AuditEntry.get(AuditEntry.action == "bypass_code_use")
    assert entry.object_id == record.sys_id
    assert entry.detail["ticket"] == task.number and entry.detail["requester"] == "CORP\\mrivera"
    assert BypassCode.get_by_id(record.id).last_used_on == task.number


def test_a_single_use_code_works_once(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "outage", single_use=True)

    submit(application(f"bypass {code}"))
    second = submit(application(f"bypass {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert second.decisions.count() == 0
    assert BypassCode.get_by_id(record.id).used_count == 1
    assert AuditEntry.select().where(AuditEntry.action == "bypass_code_use").count() == 1


def test_a_time_limited_code_works_until_it_expires(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "maintenance", single_use=False, valid_hours=0.5)

    submit(application(f"bypass {code}"))
    submit(application(f"bypass {code}"))
    BypassCode.update(expires_at=utcnow() - timedelta(seconds=1)).where(BypassCode.id == record.id).execute()
    expired = submit(application(f"bypass {code}"))

    bodies = epm_decisions(http)
    assert [body["decision"] for body in bodies] == ["Approved", "Approved"]
    # The approval ends no later than the code: 30 minutes left, less than the 60-minute maximum.
    assert int(bodies[0]["duration"]) in (29 * 60, 30 * 60)
    assert expired.decisions.count() == 0
    assert bypass.status(BypassCode.get_by_id(record.id)) == "expired"
    # Every use is audited, each with the ticket it let through.
    uses = AuditEntry.select().where(AuditEntry.action == "bypass_code_use").order_by(AuditEntry.id)
    assert [entry.detail["ticket"] for entry in uses] == [task.number for task in Task.select().order_by(Task.id)][:2]
    assert BypassCode.get_by_id(record.id).used_count == 2


def test_a_revoked_code_is_not_valid(http, submit, approve_rule):
    record, code = bypass.issue_code("root", "spare", single_use=True)
    bypass.revoke_code(record, "root")

    task = submit(application(f"bypass {code}"))

    assert task.decisions.count() == 0
    assert any("the reason quotes no ticket reference" in note for note in notes(task))


def test_a_code_satisfies_require_ticket_and_is_used_once_by_the_rules_after_it(http, submit, add_rule):
    add_rule(name="Ticket required", outcome="require_ticket")
    add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker")
    record, code = bypass.issue_code("root", "outage", single_use=True)

    submit(application(f"no ITSM today: {code}"))

    assert [body["decision"] for body in epm_decisions(http)] == ["Approved"]
    assert BypassCode.get_by_id(record.id).used_count == 1


def test_dry_run_does_not_use_up_a_code(http, submit, add_rule):
    add_rule(name="Approve valid tickets", outcome="auto_approve", ticket_source="broker", dry_run="true")
    record, code = bypass.issue_code("root", "outage", single_use=True)

    task = submit(application(f"bypass {code}"))

    assert epm_decisions(http) == []
    assert BypassCode.get_by_id(record.id).used_count == 0
    assert any("would have approved" in note for note in notes(task))


def test_a_code_must_be_single_use_or_time_limited(app):
    with pytest.raises(BadRequest, match="single-use, time-limited, or both"):
        bypass.issue_code("root", "forever", single_use=False, valid_hours=None)


def test_codes_are_listed_and_revoked_from_the_cli(runner):
    record, _code = bypass.issue_code("root", "spare", single_use=True)

    listed = runner.invoke(args=["policy", "bypass", "list"])
    revoked = runner.invoke(args=["policy", "bypass", "revoke", record.sys_id])
    after = runner.invoke(args=["policy", "bypass", "list", "--all"])

    assert f"…{record.hint}\tactive" in listed.output
    assert revoked.exit_code == 0 and "Revoked" in revoked.output
    assert f"…{record.hint}\trevoked" in after.output
    assert AuditEntry.get(AuditEntry.action == "bypass_code_revoke").object_id == record.sys_id
