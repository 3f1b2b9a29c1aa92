"""Fixtures for the jobs tests: an app on PostgreSQL only, as several scheduler hosts share it."""
import pytest

from app import create_app
from app.db import database
from app.logs import store as log_store
from app.migrations import upgrade
from tests.conftest import empty_tables


@pytest.fixture
def pg_app(postgres_url):
    """An app on PostgreSQL only: what several scheduler hosts share."""
    app = create_app({"database_url": postgres_url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        with database.connection_context():
            upgrade()
            empty_tables()
        yield app
        log_store.flush(5)
        database.close_all()
