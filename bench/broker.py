"""A broker database ready for a phase: the schema, the accounts that call it, its configuration."""
from contextlib import contextmanager

from app import create_app
from app.auth.accounts import hash_password
from app.db import close_pools, database
from app.migrations import upgrade
from app.models import Account, Configuration

API_USER = "epm"
APPROVER = "approver"
ADMIN = "admin"
PASSWORD = "bench-password-0123"
SECRET_KEY = "bench-secret-key"


@contextmanager
def broker_app(database_url):
    """The broker's app for `database_url`, inside an app context with a connection."""
    app = create_app({"database_url": database_url, "secret_key": SECRET_KEY})
    with app.app_context():
        database.connect(reuse_if_open=True)
        try:
            yield app
        finally:
            close_pools()


def prepare(database_url):
    """Create the schema, an `api`, a `user` and an `admin` account with PASSWORD, and the Default configuration."""
    with broker_app(database_url):
        upgrade()
        password_hash = hash_password(PASSWORD)
        for username, role in ((API_USER, "api"), (APPROVER, "user"), (ADMIN, "admin")):
            if Account.by_username(username) is None:
                Account.create(username=username, role=role, password_hash=password_hash)
        Configuration.default()


def server_env(database_url, **extra):
    return {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "JITBROKER_LOG_LEVEL": "WARNING", **extra}
