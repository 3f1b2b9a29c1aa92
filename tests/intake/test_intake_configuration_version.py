"""Each process keeps the configuration (and whether any policy rule is enabled) and checks its version in
every delivery's transaction: a change made anywhere (another process or host, the CLI, SQL) applies to the
very next delivery."""
import os
import subprocess
import sys
from pathlib import Path

from app.models import Configuration, Task
from app.policies.models import OUTCOME_TWO_APPROVERS, PolicyEvaluation
from app.policies.rules import create_rule
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


def jitbroker(database_url, *arguments):
    """Run the broker's CLI in a process of its own on the test's database."""
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key",
           "JITBROKER_LOG_LEVEL": "WARNING"}
    completed = subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", *arguments], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    return completed


def test_a_change_made_by_another_process_applies_to_the_next_delivery(deliver, database_url):
    before = deliver(factories.application_request("req-before")).json["result"]["ticket"]

    jitbroker(database_url, "config", "set", "ticket_type=change_request", "default_assignment_group=Service Desk")
    after = deliver(factories.application_request("req-after")).json["result"]["ticket"]

    assert (before, after) == ("INC0010001", "CHG0000001")
    assert Task.get(Task.number == after).assignment_group == "Service Desk"


def test_a_change_made_in_sql_applies_to_the_next_delivery(deliver):
    deliver(factories.admin_request("req-before"))
    Configuration.update(default_category="Privileged access").execute()

    number = deliver(factories.admin_request("req-after")).json["result"]["ticket"]

    assert Task.get(Task.number == number).category == "Privileged access"


def test_a_change_made_by_another_process_applies_to_the_next_update_event(deliver, database_url):
    deliver(factories.admin_request("req-kept-open"))
    deliver(factories.admin_decision("req-kept-open"))
    deliver(factories.admin_request("req-closed"))

    jitbroker(database_url, "config", "set", "auto_close=true")
    deliver(factories.admin_decision("req-closed"))

    states = dict(Task.select(Task.request_id, Task.closed_at.is_null(False)).tuples())
    assert states == {"req-kept-open": False, "req-closed": True}


def test_every_change_of_the_record_moves_its_version(app):
    Configuration.default()

    def version():
        return Configuration.as_of(None).configuration_version

    first = version()
    Configuration.update(sla_minutes=30).execute()
    second = version()
    record = Configuration.default()
    record.debug_logging = True
    record.save()
    assert first < second < version()


def test_a_policy_rule_added_after_a_delivery_applies_to_the_next_one(deliver):
    before = deliver(factories.application_request("req-before")).json["result"]["ticket"]
    create_rule({"name": "two approvers", "outcome": OUTCOME_TWO_APPROVERS}, "root")

    after = deliver(factories.application_request("req-after")).json["result"]["ticket"]

    evaluated = {number for number, in PolicyEvaluation.select(Task.number).join(Task).tuples()}
    assert evaluated == {after}, (before, after)


def test_a_policy_rule_disabled_in_another_process_no_longer_applies(deliver, database_url):
    rule = create_rule({"name": "two approvers", "outcome": OUTCOME_TWO_APPROVERS}, "root")
    before = deliver(factories.application_request("req-before")).json["result"]["ticket"]

    jitbroker(database_url, "policy", "set", str(rule.id), "enabled=false")
    after = deliver(factories.application_request("req-after")).json["result"]["ticket"]

    evaluated = {number for number, in PolicyEvaluation.select(Task.number).join(Task).tuples()}
    assert evaluated == {before}, (before, after)
