"""Secrets at rest: encrypted in the database, never logged, never sent to the browser."""
import logging
import re

import pytest
from cryptography.fernet import Fernet

from app.configuration import update_configuration
from app.db import database
from app.epm import tokens
from app.epm.client import EpmClient
from app.epm.fake import FakeEpm
from app.models import Configuration
from app import secrets

SECRET = "s3cr3t-Client-Value-4711"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def stored_column(name):
    table = Configuration._meta.table_name
    return database.execute_sql(f'SELECT "{name}" FROM "{table}"').fetchone()[0]


def test_the_client_secret_is_stored_encrypted_and_read_back(app):
    update_configuration({"client_secret": SECRET})
    raw = stored_column("client_secret")
    assert raw.startswith(secrets.PREFIX) and SECRET not in raw
    assert Configuration.default().client_secret == SECRET


def test_every_stored_password_is_stored_encrypted(app):
    """The EPM client secret, and the SMTP password where notifications are configured."""
    names = [name for name in ("client_secret", "smtp_password") if name in Configuration._meta.fields]
    for name in names:
        assert isinstance(Configuration._meta.fields[name], secrets.EncryptedTextField), name
        update_configuration({name: SECRET})
        assert SECRET not in stored_column(name)
        assert getattr(Configuration.default(), name) == SECRET


def test_plaintext_from_before_encryption_is_read_and_then_encrypted_by_the_migration(app):
    from app.migrations import _security, encrypt_stored

    Configuration.default()
    table = Configuration._meta.table_name
    database.execute_sql(f'UPDATE "{table}" SET client_secret = {database.param}', (SECRET,))
    assert Configuration.default().client_secret == SECRET
    encrypt_stored(table, ["client_secret"])
    assert SECRET not in stored_column("client_secret")
    assert Configuration.default().client_secret == SECRET
    assert callable(_security)


def test_a_key_from_the_environment_encrypts_and_can_be_rotated(app):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    try:
        secrets.configure("ignored", environ={secrets.KEY_VARIABLE: old})
        token = secrets.encrypt(SECRET)
        assert Fernet(old).decrypt(token[len(secrets.PREFIX):].encode()).decode() == SECRET
        secrets.configure("ignored", environ={secrets.KEY_VARIABLE: f"{new},{old}"})
        assert secrets.decrypt(token) == SECRET
        assert Fernet(new).decrypt(secrets.encrypt(SECRET)[len(secrets.PREFIX):].encode()).decode() == SECRET
    finally:
        secrets.configure(app.config["SECRET_KEY"], environ={})


def test_a_wrong_key_never_yields_the_ciphertext(app):
    token = secrets.encrypt(SECRET)
    try:
        secrets.configure("another-secret-key", environ={})
        assert secrets.decrypt(token) == ""
    finally:
        secrets.configure(app.config["SECRET_KEY"], environ={})


def test_the_configuration_page_never_shows_a_secret(app, admin):
    update_configuration({"client_secret": SECRET})
    client = app.test_client()
    token = _TOKEN.search(client.get("/sign-in").get_data(as_text=True)).group(1)
    client.post("/sign-in", data={"csrf_token": token, "username": admin.username,
                                  "password": "correct-horse-battery"})
    page = client.get("/admin/configuration").get_data(as_text=True)
    assert SECRET not in page and secrets.PREFIX not in page


def test_the_secret_never_reaches_the_log(app, caplog, monkeypatch):
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    tokens.clear_token_cache()
    caplog.set_level(logging.DEBUG)
    with FakeEpm(client_secret=SECRET) as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": SECRET})
        EpmClient.from_configuration(Configuration.default()).test_connection()
        update_configuration({"client_secret": "a-wrong-secret-value"})
        tokens.clear_token_cache()
        with pytest.raises(Exception):
            EpmClient.from_configuration(Configuration.default()).test_connection()
    tokens.clear_token_cache()
    assert caplog.records
    for record in caplog.records:
        assert SECRET not in record.getMessage() and "a-wrong-secret-value" not in record.getMessage()


WEBHOOK_URL = "https://hooks.slack.com/services/T0/B0/XoxWebhookToken"


def test_the_notification_webhook_url_is_stored_encrypted_and_init_encrypts_one_stored_in_clear(app, runner):
    from app.models import SchemaVersion

    update_configuration({"notify_webhook_url": WEBHOOK_URL})
    assert "XoxWebhookToken" not in stored_column("notify_webhook_url")
    assert stored_column("notify_webhook_url").startswith(secrets.PREFIX)
    assert Configuration.default().notify_webhook_url == WEBHOOK_URL

    # As a release before its encryption stored it: in clear.
    table = Configuration._meta.table_name
    database.execute_sql(f'UPDATE "{table}" SET notify_webhook_url = {database.param}', (WEBHOOK_URL,))
    SchemaVersion.delete().where(SchemaVersion.version == 36).execute()
    assert Configuration.default().notify_webhook_url == WEBHOOK_URL, "read as it is until init"

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: the notification webhook URL encrypted at rest" in result.output
    assert "XoxWebhookToken" not in stored_column("notify_webhook_url")
    assert Configuration.default().notify_webhook_url == WEBHOOK_URL
