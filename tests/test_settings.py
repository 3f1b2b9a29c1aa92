"""Settings: defaults, the TOML file, then the environment."""
import pytest

from app.settings import Settings, SettingsError


def test_defaults_use_the_embedded_sqlite_database():
    settings = Settings.load(environ={})
    assert settings.database_url == "sqlite:///instance/jitbroker.db"
    assert settings.sqlite_synchronous == "FULL"


def test_toml_file_then_environment_override(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[database]\nurl = "sqlite:///from-file.db"\n[server]\npublic_url = "https://a.example"\n'
                    'trusted_proxies = 1\n')
    settings = Settings.load(environ={"JITBROKER_CONFIG": str(path), "JITBROKER_PUBLIC_URL": "https://b.example"})
    assert settings.database_url == "sqlite:///from-file.db"
    assert (settings.public_url, settings.trusted_proxies) == ("https://b.example", 1)
    settings = Settings.load(environ={"JITBROKER_CONFIG": str(path), "DATABASE_URL": "postgresql://h/db"})
    assert settings.database_url == "postgresql://h/db"


@pytest.mark.parametrize("text, fragment", [
    ("[server]\ncolour = 1\n", "unknown key"),
    ("[nonsense]\nx = 1\n", "unknown key"),
    ("[server\n", "not valid TOML"),
    ("[server]\ntrusted_proxies = \"one\"\n", "must be an integer"),
])
def test_bad_settings_files_are_named_errors(tmp_path, text, fragment):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=fragment):
        Settings.load(environ={"JITBROKER_CONFIG": str(path)})


def test_every_setting_is_documented_in_the_example_file():
    import tomllib
    from pathlib import Path

    from app.settings import TOML_KEYS

    example = tomllib.loads((Path(__file__).resolve().parent.parent / "config.example.toml").read_text())
    for section, key in TOML_KEYS.values():
        assert key in example[section], f"[{section}] {key} missing from config.example.toml"


def test_healthz_answers_when_the_database_is_reachable(client):
    assert client.get("/healthz").json == {"status": "ok"}


@pytest.mark.parametrize("text, named", [('[intake]\nmode = "queued"\n', r"\[intake\]: mode"),
                                         ("[server]\nport = 8000\nweb_concurrency = 2\n",
                                          r"\[server\]: port, web_concurrency")])
def test_a_config_still_naming_a_retired_setting_is_refused_with_the_key_named(tmp_path, text, named):
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(SettingsError, match=rf"unknown key in {named} \(config.example.toml lists every key\)"):
        Settings.load(environ={"JITBROKER_CONFIG": str(config)})


def test_the_secret_key_and_audit_keys_are_not_in_the_settings_text():
    settings = Settings.load(environ={"SECRET_KEY": "session-signing-secret", "JITBROKER_AUDIT_KEY": "a" * 40,
                                      "JITBROKER_AUDIT_PREVIOUS_KEYS": "b" * 40})
    assert settings.audit_key == "a" * 40
    for secret in ("session-signing-secret", "a" * 40, "b" * 40):
        assert secret not in repr(settings)


def test_requiring_mfa_for_admins_is_off_unless_the_file_turns_it_on(tmp_path):
    config = tmp_path / "config.toml"
    assert Settings.load(environ={}).require_mfa_for_admins is False
    config.write_text("[accounts]\nrequire_mfa_for_admins = true\n")
    assert Settings.load(environ={"JITBROKER_CONFIG": str(config)}).require_mfa_for_admins is True
    config.write_text('[accounts]\nrequire_mfa_for_admins = "maybe"\n')
    with pytest.raises(SettingsError, match="require_mfa_for_admins must be true or false"):
        Settings.load(environ={"JITBROKER_CONFIG": str(config)})


def test_oidc_settings_come_from_the_file_and_the_environment(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('[oidc]\nissuer = "https://idp.example/a"\nclient_id = "broker"\n'
                    'admin_groups = ["jit-admins", "platform"]\napprover_groups = ["jit-approvers"]\n')
    settings = Settings.load(environ={"JITBROKER_CONFIG": str(path)})
    assert (settings.oidc_admin_groups, settings.oidc_approver_groups) == ("jit-admins,platform", "jit-approvers")
    assert (settings.oidc_scopes, settings.oidc_roles_claim, settings.oidc_step_up_max_age) == (
        "openid profile email", "groups", 300)
    settings = Settings.load(environ={
        "JITBROKER_CONFIG": str(path), "JITBROKER_OIDC_ISSUER": "https://idp.example/b",
        "JITBROKER_OIDC_CLIENT_ID": "other", "JITBROKER_OIDC_CLIENT_SECRET": "s", "JITBROKER_OIDC_ROLES_CLAIM": "roles",
        "JITBROKER_OIDC_ADMIN_GROUPS": "a1,a2", "JITBROKER_OIDC_APPROVER_GROUPS": "u1",
        "JITBROKER_OIDC_STEP_UP_MAX_AGE": "60"})
    assert (settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret, settings.oidc_roles_claim,
            settings.oidc_admin_groups, settings.oidc_approver_groups, settings.oidc_step_up_max_age) == (
        "https://idp.example/b", "other", "s", "roles", "a1,a2", "u1", 60)


def test_an_issuer_without_a_client_id_is_a_named_error():
    with pytest.raises(SettingsError, match="client_id"):
        Settings.load(environ={"JITBROKER_OIDC_ISSUER": "https://idp.example"})


@pytest.mark.parametrize("text, message", [
    ("[intake]\nmax_body_bytes = -1\n",
     r"\[intake\] max_body_bytes must be a number of bytes from 1024 to 1073741824, not -1"),
    ("[database]\nmax_connections = 0\n",
     r"\[database\] max_connections must be a number of connections from 1 to 1000, not 0"),
    ("[session]\nidle_minutes = -5\n",
     r"\[session\] idle_minutes must be a number of minutes from 0 to 525600, not -5"),
    ("[session]\nmax_hours = 0\n", r"\[session\] max_hours must be a number of hours from 1 to 8784, not 0"),
    ("[epm]\ntimeout_seconds = 0\n", r"\[epm\] timeout_seconds must be a number of seconds from 1 to 3600, not 0"),
    ("[server]\ntrusted_proxies = -1\n", r"\[server\] trusted_proxies must be a number of proxies from 0 to 100"),
])
def test_a_number_out_of_its_range_is_refused_with_the_setting_named(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        Settings.load(environ={"JITBROKER_CONFIG": str(path)})


@pytest.mark.parametrize("environ, message", [
    ({"PORT": "99999"}, "PORT must be a TCP port from 1 to 65535, not 99999"),
    ({"PORT": "abc"}, r"setting port must be an integer, not 'abc' \(PORT\)"),
    ({"DATABASE_URL": "mysql://broker:pw@db/jit"},
     r"\[database\] url or DATABASE_URL names a mysql database: use sqlite:///path/to/file.db or postgresql://"),
])
def test_a_variable_the_broker_cannot_use_is_refused_with_its_name(environ, message):
    with pytest.raises(SettingsError, match=message) as refused:
        Settings.load(environ=environ)
    assert "pw" not in str(refused.value)
