"""The admin configuration page: every field, a write-only secret, host checks, Test Connection."""
import html
import re

import pytest
import responses

from app.configuration import FIELDS, update_configuration
from app.epm.tokens import clear_token_cache
from app.models import Configuration

SECRET = "s3cr3t-value-never-shown"


def text_of(response):
    return response.get_data(as_text=True)


def form_values(**changes):
    """The form as the page submits it unchanged, with `changes` applied."""
    record = Configuration.default()
    values = {field.name: getattr(record, field.name) for field in FIELDS if not field.secret}
    values["auto_close"] = "true" if record.auto_close else ""
    values.update(changes)
    return {name: value for name, value in values.items() if value is not False}


def test_configuration_page_shows_every_field(as_admin):
    page = text_of(as_admin.get("/admin/configuration"))
    for field in FIELDS:
        assert f'for="{field.name}"' in page, field.name
        assert str(field.label).replace('"', "&#34;") in page
    assert ">Test Connection</button>" in page


def test_client_secret_is_never_rendered(as_admin, app):
    update_configuration({"client_secret": SECRET, "client_id": "abc"})
    page = text_of(as_admin.get("/admin/configuration"))
    assert SECRET not in page
    assert re.search(r'<input id="client_secret" name="client_secret" type="password" value=""', page)
    assert "A secret is stored" in page


def test_blank_secret_keeps_the_stored_one(as_admin, app):
    update_configuration({"client_secret": SECRET})
    response = as_admin.post("/admin/configuration", form_values(client_id="new-client", client_secret=""))
    assert response.status_code == 302
    record = Configuration.default()
    assert record.client_secret == SECRET
    assert record.client_id == "new-client"


def test_typed_secret_replaces_the_stored_one(as_admin, app):
    update_configuration({"client_secret": SECRET})
    as_admin.post("/admin/configuration", form_values(client_secret="another-secret"))
    assert Configuration.default().client_secret == "another-secret"


def test_saving_sets_every_kind_of_field(as_admin):
    response = as_admin.post("/admin/configuration", form_values(
        pmc_host="acme-services.pm.beyondtrustcloud.com", ticket_type="sc_task", auto_close="true",
        active_states="open, work in progress", default_assignment_group="Service Desk"))
    assert response.status_code == 302
    record = Configuration.default()
    assert (record.pmc_host, record.ticket_type, record.auto_close) == (
        "acme-services.pm.beyondtrustcloud.com", "sc_task", True)
    assert record.active_states == "Open, Work in Progress"
    assert record.default_assignment_group == "Service Desk"
    as_admin.post("/admin/configuration", form_values(auto_close=False))
    assert Configuration.default().auto_close is False


def test_invalid_host_is_refused_with_its_reason(as_admin):
    response = as_admin.post("/admin/configuration", form_values(pmc_host="https://"))
    assert response.status_code == 400
    page = text_of(response)
    assert "Invalid configuration" in page
    assert re.search(r'id="pmc_host-error"\s*>[^<]*host name', page, re.IGNORECASE)
    assert Configuration.default().pmc_host == ""


def test_host_without_services_suffix_is_saved_with_a_warning(as_admin):
    response = as_admin.post("/admin/configuration", form_values(pmc_host="acme.pm.beyondtrustcloud.com"),
                             follow_redirects=True)
    assert "-services suffix" in text_of(response)
    assert "-services suffix" in text_of(as_admin.get("/admin/configuration"))


def test_test_connection_reports_an_unconfigured_connection(as_admin):
    response = as_admin.post("/admin/configuration/test", follow_redirects=True)
    page = text_of(response)
    assert "Test Connection failed" in page
    assert "The PMC Service Host Name is empty" in page


def test_configuration_is_for_admins_only(as_approver):
    assert as_approver.get("/admin/configuration").status_code == 403
    assert as_approver.post("/admin/configuration", {"tenant_id": "x"}).status_code == 403
    assert as_approver.post("/admin/configuration/test").status_code == 403


TOKEN_URL = "https://acme-services.pm.beyondtrustcloud.com/oauth/connect/token"


@pytest.mark.parametrize(("answer", "shown"), [
    (dict(status=400, json={"error": "invalid_client", "error_description": "Invalid client secret"}),
     ["HTTP 400: invalid_client: Invalid client secret",
      "regenerating the secret in EPM invalidates the old one"]),
    (dict(status=401, body="Unauthorized " + "z" * 700, content_type="text/plain"),
     ["HTTP 401: Unauthorized " + "z" * 487 + "… [213 more characters]", "Check the client ID and client secret"]),
])
def test_test_connection_shows_a_refused_token_request_with_what_to_check(as_admin, runner, answer, shown):
    update_configuration({"pmc_host": "acme-services.pm.beyondtrustcloud.com", "client_id": "broker-client",
                          "client_secret": SECRET})
    clear_token_cache()
    with responses.RequestsMock() as epm:
        epm.post(TOKEN_URL, **answer)
        page = html.unescape(text_of(as_admin.post("/admin/configuration/test", follow_redirects=True)))
        clear_token_cache()
        cli = runner.invoke(args=["test-connection"])
    assert "Test Connection failed" in page and cli.exit_code != 0
    for text in shown:
        assert text in page and text in cli.output
    assert SECRET not in page + cli.output


def test_token_request_settings_are_offered_and_saved(as_admin):
    page = text_of(as_admin.get("/admin/configuration"))
    assert '<option value="client_secret_basic"' in page
    response = as_admin.post("/admin/configuration", form_values(token_auth_method="client_secret_basic",
                                                                   token_scope="urn:management:api"))
    assert response.status_code == 302
    record = Configuration.default()
    assert (record.token_auth_method, record.token_scope) == ("client_secret_basic", "urn:management:api")
    refused = as_admin.post("/admin/configuration", form_values(token_auth_method="private_key_jwt"))
    assert refused.status_code == 400 and "choose one of client_secret_post, client_secret_basic" in text_of(refused)


def test_the_epm_status_mapping_is_set_on_the_page_and_a_status_meaning_both_is_refused(as_admin):
    as_admin.post("/admin/configuration", form_values(epm_approved_statuses="Granted, 3"))
    assert Configuration.default().epm_approved_statuses == "Granted, 3"
    response = as_admin.post("/admin/configuration", form_values(epm_denied_statuses="Refused, granted"))
    assert response.status_code == 400
    assert re.search(r'id="epm_denied_statuses-error"\s*>[^<]*also an approved status', text_of(response))
    assert Configuration.default().epm_denied_statuses == "Denied, 2001"
