"""ITSM connections: stored from the CLI and the admin page, secrets write-only, Validate Settings."""
import pytest
import responses

from app.audit.models import AuditEntry
from app.errors import BadRequest
from app.itsm.connections import create_connection
from app.itsm.models import ItsmConnection
from tests.webclient import CONFIRMED

SN = "https://corp.service-now.com"
SN_ADD = ["itsm", "add", "corp", "servicenow", f"base_url={SN}", "auth_method=basic", "username=svc-jit",
          "secret=sn-password"]


def test_the_cli_adds_lists_and_shows_a_connection_without_its_secret(runner):
    added = runner.invoke(args=SN_ADD)
    listed = runner.invoke(args=["itsm", "list"])
    shown = runner.invoke(args=["itsm", "show", "corp"])

    assert added.exit_code == 0, added.output
    assert "corp\tservicenow\tenabled" in listed.output
    assert "secret = ********" in shown.output
    assert "sn-password" not in shown.output + listed.output
    entry = AuditEntry.get(AuditEntry.action == "itsm_connection_create")
    assert "sn-password" not in str(entry.detail)


def test_validate_settings_from_the_cli(runner):
    runner.invoke(args=SN_ADD)
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": []})
        ok = runner.invoke(args=["itsm", "validate", "corp"])
        mock.replace("GET", f"{SN}/api/now/table/change_request", status=401, json={})
        failed = runner.invoke(args=["itsm", "validate", "corp"])

    assert ok.exit_code == 0 and "Settings OK: ServiceNow 'corp' answered" in ok.output
    assert failed.exit_code == 1 and "refused the credentials" in failed.output
    assert ItsmConnection.get().last_validation.startswith("Validation failed")


def test_the_cli_sets_options_and_removes_a_connection(runner):
    runner.invoke(args=["itsm", "add", "jsm", "jira", "base_url=https://acme.atlassian.net", "username=a@b.c",
                        "secret=tok", "option.start_field=customfield_10058"])

    changed = runner.invoke(args=["itsm", "set", "jsm", "option.end_field=customfield_10059", "enabled=false"])
    connection = ItsmConnection.get()
    removed = runner.invoke(args=["itsm", "remove", "jsm"])

    assert changed.exit_code == 0, changed.output
    assert connection.options == {"start_field": "customfield_10058", "end_field": "customfield_10059"}
    assert connection.enabled is False and connection.auth_method == "api_token"
    assert removed.exit_code == 0 and ItsmConnection.select().count() == 0


def test_the_cli_looks_a_ticket_up_as_the_checks_would(runner):
    runner.invoke(args=SN_ADD)
    record = {"number": {"value": "CHG0000024", "display_value": "CHG0000024"},
              "state": {"value": "-2", "display_value": "Scheduled"}, "approval": {"value": "approved"}}
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": [record]})
        result = runner.invoke(args=["itsm", "lookup", "corp", "CHG0000024"])

    assert "state = Scheduled" in result.output and "approval = approved" in result.output


@pytest.mark.parametrize("values, field", [
    ({"base_url": "http://corp.service-now.com"}, "base_url"),
    ({"name": "broker"}, "name"),
    ({"kind": "remedy"}, "kind"),
    ({"auth_method": "oauth2"}, "auth_method"),
    ({"timeout_seconds": "600"}, "timeout_seconds"),
])
def test_bad_settings_are_refused_with_the_field_named(app, values, field):
    raw = {"name": "corp", "kind": "servicenow", "base_url": SN, **values}

    with pytest.raises(BadRequest) as refused:
        create_connection(raw, "root")

    assert field in refused.value.extra["fields"]


def test_the_admin_page_creates_a_connection_and_never_renders_its_secret(as_admin):
    created = as_admin.post("/admin/policies/itsm/new", {
        "name": "corp", "kind": "servicenow", "enabled": "true", "base_url": SN, "auth_method": "basic",
        "username": "svc-jit", "secret": "sn-password", "timeout_seconds": "10", "options": ""})
    page = as_admin.get("/admin/policies/itsm/corp").get_data(as_text=True)

    assert created.status_code == 302
    assert "sn-password" not in page
    assert "A value is stored; leave blank to keep it" in page


def test_saving_with_a_blank_secret_keeps_the_stored_one(as_admin, app):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc", "secret": "pw-1"},
                      "root")

    as_admin.post("/admin/policies/itsm/corp", {"name": "corp", "kind": "servicenow", "enabled": "true",
                                                "base_url": SN, "auth_method": "basic", "username": "svc2",
                                                "secret": "", "timeout_seconds": "10"})

    connection = ItsmConnection.get()
    assert (connection.username, connection.secret) == ("svc2", "pw-1")


def test_validate_settings_button_shows_the_result(as_admin, app):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc", "secret": "pw"},
                      "root")
    with responses.RequestsMock() as mock:
        mock.get(f"{SN}/api/now/table/change_request", json={"result": []})
        answer = as_admin.post("/admin/policies/itsm/corp/validate", follow_redirects=True)

    assert "Settings OK: ServiceNow &#39;corp&#39; answered" in answer.get_data(as_text=True)


def test_approvers_cannot_open_the_itsm_pages(as_approver):
    assert as_approver.get("/admin/policies/itsm").status_code == 403


def test_secrets_are_stored_encrypted(app):
    from app.db import database

    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc",
                       "secret": "sn-password", "client_secret": "cs", "refresh_token": "rt"}, "root")

    row = database.execute_sql('SELECT secret, client_secret, refresh_token FROM x_bets_pmc_jit_itsm_connection'
                               ).fetchone()
    assert all(value.startswith("fernet:") for value in row)
    assert "sn-password" not in "".join(row)
    assert ItsmConnection.get().secret == "sn-password"


def test_the_admin_page_refuses_to_delete_a_connection_a_rule_uses(as_admin, add_rule):
    create_connection({"name": "corp", "kind": "servicenow", "base_url": SN, "username": "svc", "secret": "pw"},
                      "root")
    add_rule(name="Changes", outcome="auto_approve", ticket_source="corp")

    answer = as_admin.post("/admin/policies/itsm/corp/delete", CONFIRMED, follow_redirects=True)

    assert "is the ticket source of rule" in answer.get_data(as_text=True)
    assert ItsmConnection.select().count() == 1
