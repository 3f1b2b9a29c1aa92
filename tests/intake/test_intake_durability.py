"""A delivery's 2xx means it and its ticket are on disk: the webhook's commit waits for it
(SQLite in WAL mode with synchronous FULL; PostgreSQL with synchronous_commit on)."""
from app.db import database, is_sqlite
from app.models import IncomingRequest
from tests import factories


def commits_wait_for_the_disk():
    if is_sqlite():
        # 2 is FULL, which syncs the WAL at every commit; 1 is NORMAL, which leaves that to checkpoints.
        journal = database.execute_sql("PRAGMA journal_mode").fetchone()[0]
        return journal == "wal" and database.execute_sql("PRAGMA synchronous").fetchone()[0] == 2
    return database.execute_sql("SHOW synchronous_commit").fetchone()[0] == "on"


def test_the_connection_a_delivery_commits_on_waits_for_the_disk(app, deliver, api_account, monkeypatch):
    seen = []
    real_commit = database.obj.commit

    def commit():
        seen.append(commits_wait_for_the_disk())
        return real_commit()

    monkeypatch.setattr(database.obj, "commit", commit)
    response = deliver(factories.application_request("req-durable"))

    assert response.status_code == 200 and response.json["result"]["ticket"]
    assert seen and all(seen), "every commit of the delivery waited for the disk"
    monkeypatch.undo()
    with database.connection_context():
        stored = IncomingRequest.get(IncomingRequest.sys_id == response.json["result"]["incoming_request"])
    assert stored.task.number == response.json["result"]["ticket"]
