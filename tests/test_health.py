"""`GET /readyz`: ready only with a reachable database, a current schema and a live scheduler."""
from datetime import timedelta

import pytest

from app.jobs.lease import STALE_AFTER_SECONDS, acquire_scheduler_lease
from app.jobs.models import SchedulerLease
from app.migrations import LATEST_VERSION
from app.models import SchemaVersion


@pytest.fixture
def latest_migration_missing(app):
    """The schema one step behind the code, as after an upgrade without `jitbroker init`.

    The row is put back afterwards: the PostgreSQL database outlives the test, and
    the next test's upgrade must not run the step a second time.
    """
    SchemaVersion.delete().where(SchemaVersion.version == LATEST_VERSION).execute()
    yield
    SchemaVersion.insert(version=LATEST_VERSION).on_conflict_ignore().execute()


@pytest.fixture
def scheduler_running(app):
    assert acquire_scheduler_lease("test-host:1:scheduler:abc")


def test_ready_when_database_schema_and_scheduler_are_fine(client, scheduler_running):
    answer = client.get("/readyz")

    assert answer.status_code == 200
    assert answer.json["status"] == "ready"
    assert answer.json["checks"]["database"] == "ok"
    assert answer.json["checks"]["migrations"] == f"schema version {LATEST_VERSION}"
    assert answer.json["checks"]["scheduler"].startswith("scheduler heartbeat")


def test_not_ready_while_the_latest_migration_is_missing(client, scheduler_running, latest_migration_missing):
    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.json["status"] == "not ready"
    assert answer.json["checks"]["migrations"] == f"migrations {LATEST_VERSION} not applied: run `jitbroker init`"


def test_not_ready_when_no_scheduler_ever_ran(client, app):
    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert "jitbroker scheduler" in answer.json["checks"]["scheduler"]


def test_not_ready_when_the_scheduler_heartbeat_is_stale(client, scheduler_running):
    stale = SchedulerLease.get().heartbeat_at - timedelta(seconds=STALE_AFTER_SECONDS + 30)
    SchedulerLease.update(heartbeat_at=stale).execute()

    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert "heartbeat is" in answer.json["checks"]["scheduler"]


def test_liveness_does_not_wait_for_readiness(client, latest_migration_missing):
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200
