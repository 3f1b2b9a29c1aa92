"""Fixtures shared by the whole suite: an app on each database backend, accounts, clients.

Every test that uses `app` runs twice: on a fresh SQLite file and on a PostgreSQL
database created for this test run on 127.0.0.1 (emptied between tests).
"""
import base64
import json
import os
import shutil
import uuid
from pathlib import Path

import psycopg2
import pytest

from app import create_app
from app.configuration import update_configuration
from app.db import close_pools, database
from app.epm import tokens
from app.epm.fake import FakeEpm
from app.models import Task, utcnow
from app.migrations import upgrade
from app.logs import store as log_store
from tests import factories
from tests.webclient import WebClient

POSTGRES_ADMIN_URL = os.environ.get("JITBROKER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")
WEBHOOK = "/api/x_bets_pmc_jit/authorization_request_webhook_handler"


def _admin_connection():
    connection = psycopg2.connect(POSTGRES_ADMIN_URL)
    connection.autocommit = True
    return connection


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL database of its own for this test run (and xdist worker), dropped afterwards."""
    yield from scratch_postgres_database()


def scratch_postgres_database():
    """Make an empty PostgreSQL database, yield its URL, then drop it: a module that needs a database of each
    test's own (one with no schema yet, or nothing another test left in it) overrides `postgres_url` with it."""
    name = f"jitbroker_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    connection = _admin_connection()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    connection = _admin_connection()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jitbroker.db"
    return request.getfixturevalue("postgres_url")


# Tables this size or larger (a test's bulk rows) are truncated; smaller ones are emptied by DELETE.
_LARGE_TABLE_BYTES = 1 << 20


def empty_tables():
    """Delete every row but the schema version and restart the tables' sequences, so each PostgreSQL
    test starts clean.

    DELETE, children before the tables they reference, rather than TRUNCATE: TRUNCATE gives each of
    some thirty tables and their indexes new files, about 0.2 s a test, where deleting the few rows
    a test leaves costs milliseconds. A table grown large is truncated (with what references it)."""
    tables = [name for name in database.get_tables() if name != "jitbroker_schema_version"]
    if not tables:
        return
    order, sequences = _emptying_plan(tuple(sorted(tables)))
    sizes = dict(database.execute_sql(
        "SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
        "AND relnamespace = current_schema()::regnamespace AND relname = ANY(%s)",
        (tables,)).fetchall())
    large = [name for name in order if sizes.get(name, 0) >= _LARGE_TABLE_BYTES]
    if large:
        database.execute_sql("TRUNCATE " + ", ".join(f'"{name}"' for name in large) + " CASCADE")
    for name in order:
        if name not in large:
            database.execute_sql(f'DELETE FROM "{name}"')
    if sequences:
        database.execute_sql("SELECT " + ", ".join("setval(%s::regclass, 1, false)" for _ in sequences), sequences)


_EMPTYING_PLANS = {}


def _emptying_plan(tables):
    """(the tables children first, the sequences their columns own) for `tables`, read once per schema."""
    plan = _EMPTYING_PLANS.get(tables)
    if plan is None:
        references = database.execute_sql(
            "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
        ).fetchall()
        parents = {name: set() for name in tables}
        for child, parent in references:
            if child in parents and parent in parents and child != parent:
                parents[child].add(parent)
        # Parents first, then reversed: each table is emptied before any table it references.
        ordered, placed = [], set()
        while len(ordered) < len(tables):
            ready = sorted(name for name in tables if name not in placed and parents[name] <= placed)
            if not ready:
                raise AssertionError(f"foreign keys among the tables form a circle: {parents}")
            ordered += ready
            placed.update(ready)
        sequences = [name for (name,) in database.execute_sql(
            "SELECT sequence.oid::regclass::text FROM pg_class sequence "
            "JOIN pg_depend owned ON owned.classid = 'pg_class'::regclass AND owned.objid = sequence.oid "
            "AND owned.refclassid = 'pg_class'::regclass "
            "JOIN pg_class owner ON owner.oid = owned.refobjid "
            "WHERE sequence.relkind = 'S' AND owner.relname = ANY(%s) ORDER BY 1", (list(tables),)).fetchall()]
        plan = _EMPTYING_PLANS[tables] = (ordered[::-1], sequences)
    return plan


@pytest.fixture
def app_settings():
    """Settings a test module wants beyond the defaults (override it there, e.g. the busy timeout)."""
    return {}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A SQLite database with every migration applied, made once per test run (and xdist worker): a test's
    app starts on a copy of it, a file copy in the place of running the migrations again."""
    path = tmp_path_factory.mktemp("sqlite-template") / "jitbroker.db"
    template = create_app({"database_url": f"sqlite:///{path}", "secret_key": "test-secret-key", "TESTING": True})
    with template.app_context():
        with database.connection_context():
            upgrade()
            # Everything in the database file itself, none of it left in the write-ahead log.
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        log_store.flush(5)
        close_pools()
    return path


@pytest.fixture
def app(database_url, app_settings, request):
    if database_url.startswith("sqlite:///"):
        copy = Path(database_url.removeprefix("sqlite:///"))
        if not copy.exists():
            shutil.copyfile(request.getfixturevalue("sqlite_template"), copy)
    app = create_app({"database_url": database_url, "secret_key": "test-secret-key", "TESTING": True,
                      **app_settings})
    with app.app_context():
        with database.connection_context():
            upgrade()
            if not database_url.startswith("sqlite"):
                empty_tables()
        yield app
        # The app-log writer thread may still be storing a record this test logged.
        log_store.flush(5)
        close_pools()


@pytest.fixture
def postgres_app(postgres_url):
    """An app on PostgreSQL alone, for what only PostgreSQL does (its pool's checks, statements prepared by name)."""
    app = create_app({"database_url": postgres_url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        yield app
        database.close_all()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def basic_auth(username, password):
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def api_account(app):
    return factories.account("epm", "api")


@pytest.fixture
def approver(app):
    return factories.account("jchen", "user")


@pytest.fixture
def admin(app):
    return factories.account("root", "admin")


@pytest.fixture
def api_auth(api_account):
    return basic_auth(api_account.username, factories.PASSWORD)


@pytest.fixture
def approver_auth(approver):
    return basic_auth(approver.username, factories.PASSWORD)


@pytest.fixture
def admin_auth(admin):
    return basic_auth(admin.username, factories.PASSWORD)


@pytest.fixture
def fake_epm(app, monkeypatch):
    """A fake EPM tenant on loopback, entered in the configuration as an admin would."""
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    tokens.clear_token_cache()
    with FakeEpm() as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake
    tokens.clear_token_cache()


@pytest.fixture
def deliver(client, api_auth):
    """POST a delivery (dict, str or bytes) as EPM would; returns the response."""

    def deliver(body, content_type="application/json", headers=None):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return client.post(WEBHOOK, data=data, content_type=content_type, headers={**api_auth, **(headers or {})})

    return deliver


@pytest.fixture
def make_ticket(deliver):
    """Deliver a created event as EPM would and return the ticket it became (opened `age` ago)."""

    def make(body=None, age=None, **task_values):
        answer = deliver(body or factories.application_request())
        assert answer.status_code == 200, answer.get_data(as_text=True)
        task = Task.get(Task.number == answer.json["result"]["ticket"])
        if age is not None:
            task_values["opened_at"] = utcnow() - age
        if task_values:
            Task.update(**task_values).where(Task.id == task.id).execute()
            task = Task.get_by_id(task.id)
        return task

    return make


@pytest.fixture
def ticket(make_ticket):
    """An application-access ticket created by a delivery from EPM."""
    return make_ticket()


@pytest.fixture
def web(client):
    """The test client used as a browser: signs in, sends each form's CSRF token."""
    return WebClient(client)


@pytest.fixture
def as_approver(web, approver):
    assert web.sign_in(approver.username).status_code == 302
    return web


@pytest.fixture
def as_admin(web, admin):
    assert web.sign_in(admin.username).status_code == 302
    return web
