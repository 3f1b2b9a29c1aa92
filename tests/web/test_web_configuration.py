"""The admin configuration page: every field, a write-only secret, host checks, Test Connection."""
import html
import re

import pytest
import responses

from app.configuration import FIELDS, update_configuration, versioned_configuration
from app.epm.tokens import clear_token_cache
from app.models import Configuration
from app.web import configuration as web_configuration
from app.web.configuration import GROUPS

SECRET = "s3cr3t-value-never-shown"


def text_of(response):
    return response.get_data(as_text=True)


def form_values(**changes):
    """The form as the page submits it unchanged, with `changes` applied."""
    record = versioned_configuration()
    values = {field.name: getattr(record, field.name) for field in FIELDS if not field.secret}
    values["auto_close"] = "true" if record.auto_close else ""
    values[web_configuration.VERSION_FIELD] = str(record.configuration_version)
    values.update(changes)
    return {name: value for name, value in values.items() if value is not False}


def form_of(page):
    """The form's fields as a browser would submit the configuration page `page` (its HTML) unchanged."""
    values = {name: html.unescape(value) for name, value in
              re.findall(r'<input id="[^"]+" name="([^"]+)" type="text" value="([^"]*)"', page)}
    values.update(re.findall(r'<input id="[^"]+" name="([^"]+)" type="checkbox" value="(true)"[^>]*checked', page))
    for name, options in re.findall(r'<select id="[^"]+" name="([^"]+)"[^>]*>(.*?)</select>', page, re.DOTALL):
        values[name] = re.search(r'<option value="([^"]*)"\s*selected', options).group(1)
    values.update(re.findall(r'<input type="hidden" name="(configuration_version)" value="(\d+)"', page))
    return values


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


@pytest.mark.parametrize("url", ["https://127.0.0.1:99999/hook", "https://127.0.0.1:0/hook", "https://:443/hook"])
def test_a_notification_webhook_url_without_a_usable_host_and_port_is_refused(as_admin, url):
    response = as_admin.post("/admin/configuration", form_values(notify_webhook_url=url))
    assert response.status_code == 400
    assert re.search(r'id="notify_webhook_url-error"\s*>[^<]*(port from 1 to 65535|https:// URL)', text_of(response))
    assert Configuration.default().notify_webhook_url == ""


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


def fieldsets(page):
    """{legend: [field names]} of the configuration form's fieldsets, in page order."""
    found = {}
    for legend, body in re.findall(r'<fieldset id="group-[a-z-]+" class="config-group[^"]*">\s*<legend>([^<]+)'
                                   r'(.*?)</fieldset>', page, re.DOTALL):
        found[legend.strip()] = re.findall(r'<(?:input|select) id="([a-z_]+)"', body)
    return found


def test_every_field_is_in_one_named_group():
    named = [name for _, names in GROUPS for name in names]
    assert sorted(named) == sorted(field.name for field in FIELDS)


def test_the_form_is_grouped_into_fieldsets(as_admin):
    groups = fieldsets(text_of(as_admin.get("/admin/configuration")))
    assert list(groups) == ["EPM connection", "Tickets", "Notifications", "Policies", "Retention", "Sign-in"]
    assert groups["EPM connection"][:4] == ["pmc_host", "tenant_id", "client_id", "client_secret"]
    assert "smtp_host" in groups["Notifications"] and "retention_app_log_days" in groups["Retention"]
    assert sorted(name for names in groups.values() for name in names) == sorted(field.name for field in FIELDS)


def test_a_field_missing_from_the_groups_still_shows(as_admin, monkeypatch):
    monkeypatch.setattr(web_configuration, "GROUPS", web_configuration.GROUPS[1:])
    groups = fieldsets(text_of(as_admin.get("/admin/configuration")))
    assert groups[web_configuration.OTHER_GROUP][:2] == ["pmc_host", "tenant_id"]


def test_each_error_is_beside_its_field_and_summarised_with_a_link(as_admin):
    response = as_admin.post("/admin/configuration", form_values(smtp_port="99999", token_path="no slash"))
    assert response.status_code == 400
    page = text_of(response)
    for name, message in (("smtp_port", "a whole number from 1 to 65535"), ("token_path", "a path starting with /")):
        assert re.search(rf'<input id="{name}" name="{name}"[^>]*aria-describedby="[^"]*{name}-error"'
                         rf'\s+aria-invalid="true"', page), name
        assert re.search(rf'<p class="field-error" id="{name}-error"\s*>{message}', page), name
        assert re.search(rf'<li><a href="#{name}">[^<]+</a>: {message}', page), name
    groups = dict(re.findall(r'<legend>([^<]+?) <span class="group-errors">\((\d+) to fix\)', page))
    assert groups == {"EPM connection": "1", "Notifications": "1"}
    assert 'id="error-summary"' in page and "fix the fields marked below" in page


def test_test_connection_shows_its_result_beside_the_button_once(as_admin):
    response = as_admin.post("/admin/configuration/test")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/configuration#test-connection")
    page = text_of(as_admin.get("/admin/configuration"))
    section = page[page.index('id="test-connection"'):]
    assert re.search(r'>Test Connection</button>\s*<p id="test-result" class="flash test-result error"\s+role="alert"'
                     r'[^>]*>Test Connection failed: The PMC Service Host Name is empty', section)
    assert "Test Connection failed" not in page[:page.index('id="test-connection"')]
    assert "Test Connection failed" not in text_of(as_admin.get("/admin/configuration"))


def test_a_page_saved_after_a_change_elsewhere_keeps_that_change_and_shows_the_entries_again(as_admin):
    loaded = form_of(text_of(as_admin.get("/admin/configuration")))
    assert loaded["configuration_version"] and loaded["ticket_type"] == "incident" and "auto_close" not in loaded
    # Meanwhile, on another host: `jitbroker config set auto_close=true retention_closed_ticket_days=30`.
    update_configuration({"auto_close": "true", "retention_closed_ticket_days": "30"})

    # The admin changes the reminder time on the page loaded before, and saves.
    refused = as_admin.post("/admin/configuration", {**loaded, "sla_minutes": "45"})

    assert refused.status_code == 409
    page = text_of(refused)
    assert "changed after this page was loaded" in page and "nothing was saved" in page
    assert "review the fields marked below, which differ from the saved configuration, then save again" in page
    assert re.search(r'id="auto_close-error"\s*>The saved value is on<', page)
    assert re.search(r'id="retention_closed_ticket_days-error"\s*>The saved value is 30<', page)
    assert re.search(r'id="sla_minutes-error"\s*>The saved value is 0<', page)
    assert 'name="sla_minutes" type="text" value="45"' in page, "what the admin typed is kept"
    saved = Configuration.default()
    assert (saved.auto_close, saved.retention_closed_ticket_days, saved.sla_minutes) == (True, 30, 0)

    # Having looked, the admin keeps the other change and saves the form shown again.
    again = form_of(page)
    assert again["configuration_version"] != loaded["configuration_version"]
    assert as_admin.post("/admin/configuration", {**again, "auto_close": "true",
                                                  "retention_closed_ticket_days": "30"}).status_code == 302
    saved = Configuration.default()
    assert (saved.auto_close, saved.retention_closed_ticket_days, saved.sla_minutes) == (True, 30, 45)


def test_a_page_shown_again_for_an_error_still_knows_when_it_was_loaded(as_admin):
    loaded = form_of(text_of(as_admin.get("/admin/configuration")))
    update_configuration({"default_category": "Endpoint"})
    invalid = as_admin.post("/admin/configuration", {**loaded, "smtp_port": "99999"})
    assert invalid.status_code == 400
    corrected = {**form_of(text_of(invalid)), "smtp_port": "25"}
    assert corrected["configuration_version"] == loaded["configuration_version"]

    assert as_admin.post("/admin/configuration", corrected).status_code == 409
    assert (Configuration.default().default_category, Configuration.default().smtp_port) == ("Endpoint", 587)


def test_a_form_without_the_version_it_was_loaded_at_is_not_saved(as_admin):
    stale = form_values(sla_minutes="45")
    del stale[web_configuration.VERSION_FIELD]
    assert as_admin.post("/admin/configuration", stale).status_code == 409
    assert Configuration.default().sla_minutes == 0
