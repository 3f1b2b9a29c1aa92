"""SQLite busy: another writer holding the lock past the busy timeout gets EPM a 503 to retry, not a 500."""
import json
import sqlite3

from app import create_app
from app.db import database
from app.migrations import upgrade
from app.models import IncomingRequest
from tests import factories
from tests.conftest import WEBHOOK, basic_auth


def test_a_held_write_lock_answers_503_with_retry_after_and_recovers_without_a_restart(tmp_path):
    path = tmp_path / "busy.db"
    app = create_app({"database_url": f"sqlite:///{path}", "secret_key": "test-secret-key", "TESTING": True,
                      "sqlite_busy_timeout_ms": 200})
    with app.app_context():
        with database.connection_context():
            upgrade()
            factories.account("epm", "api")
        client = app.test_client()
        auth = basic_auth("epm", factories.PASSWORD)
        body = json.dumps(factories.admin_request())
        assert client.post(WEBHOOK, data=body, content_type="application/json", headers=auth).status_code == 200

        other_writer = sqlite3.connect(path, timeout=0, isolation_level=None)
        other_writer.execute("BEGIN IMMEDIATE")
        try:
            busy = client.post(WEBHOOK, data=json.dumps(factories.admin_request("busy-1")),
                               content_type="application/json", headers=auth)
            assert busy.status_code == 503
            assert int(busy.headers["Retry-After"]) > 0
            assert busy.json["status"] == "failure"
        finally:
            other_writer.execute("ROLLBACK")
            other_writer.close()

        retried = client.post(WEBHOOK, data=json.dumps(factories.admin_request("busy-1")),
                              content_type="application/json", headers=auth)
        assert retried.status_code == 200
        with database.connection_context():
            assert IncomingRequest.select().where(IncomingRequest.request_id == "busy-1").count() == 1
        database.close_all()
