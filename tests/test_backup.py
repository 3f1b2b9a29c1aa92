"""`jitbroker backup` and `jitbroker restore`, end to end on SQLite and PostgreSQL: a backup taken while
deliveries keep arriving holds one consistent moment, and restoring it brings back exactly that moment."""
import os
import shutil
import sqlite3
import threading

import pytest

from app.backup import BackupError, backup, restore
from app.chat.models import ChatPost, SlackLink, SlackSignature
from app.db import close_pools, database
from app.logs import store as log_store
from app.migrations import MIGRATIONS
from app.models import Account, Configuration, IncomingRequest, SchemaVersion, Task
from tests import factories
from tests.conftest import WEBHOOK, basic_auth, scratch_postgres_database
from tests.waiting import wait_until


@pytest.fixture
def postgres_url():
    """A PostgreSQL database of this test's own: a backup of the whole database then holds nothing another test
    left in it."""
    yield from scratch_postgres_database()


class DeliveryWriter(threading.Thread):
    """Delivers new requests as EPM would, one after another, until stopped; counts the tickets made."""

    def __init__(self, app, auth):
        super().__init__(daemon=True)
        self.client = app.test_client()
        self.auth = auth
        self.stop = threading.Event()
        self.made = 0
        self.failures = []

    def run(self):
        while not self.stop.is_set():
            answer = self.client.post(WEBHOOK, json=factories.application_request(), headers=self.auth)
            if answer.status_code == 200:
                self.made += 1
            else:
                self.failures.append(answer.get_data(as_text=True))

    def finish(self):
        self.stop.set()
        self.join(30)
        close_pools()
        assert not self.failures, self.failures[:3]


def tickets():
    """Every ticket as (id, number, request id), in the order they were made."""
    return [(task.id, task.number, task.jit_request.request_id) for task in Task.select().order_by(Task.id)]


@pytest.fixture
def writer(app, api_account):
    writer = DeliveryWriter(app, basic_auth(api_account.username, factories.PASSWORD))
    yield writer
    if writer.is_alive():
        writer.finish()


def test_a_backup_taken_during_writes_restores_exactly_that_moment(app, runner, writer, tmp_path, make_ticket):
    early = make_ticket()
    writer.start()
    wait_until(lambda: writer.made >= 5, message="five deliveries before the backup")
    before_backup = tickets()

    backup_path = tmp_path / "broker.backup"
    result = runner.invoke(args=["backup", str(backup_path)])
    assert result.exit_code == 0, result.output
    assert f"to {backup_path}" in result.output and backup_path.stat().st_size > 0
    made_by_backup_end = writer.made
    wait_until(lambda: writer.made >= made_by_backup_end + 3, message="deliveries after the backup")
    writer.finish()
    live = tickets()

    # Changed after the backup: a ticket more, a ticket gone, an account more, the configuration.
    later = make_ticket()
    Task.delete().where(Task.id == early.id).execute()
    factories.account("after-backup", "user")
    Configuration.update(ticket_type="change_request").execute()
    close_pools()

    refused = runner.invoke(args=["restore", str(backup_path)])
    assert refused.exit_code != 0 and "--yes" in refused.output
    assert Task.select().where(Task.id == later.id).exists(), "nothing restored without --yes"
    close_pools()

    restored = runner.invoke(args=["restore", str(backup_path), "--yes"])
    assert restored.exit_code == 0, restored.output

    with database.connection_context():
        after = tickets()
        assert after[:len(before_backup)] == before_backup, "everything written before the backup is back"
        assert after == live[:len(after)], "one moment: the tickets made up to it, none skipped, none after"
        assert len(after) < len(live), "deliveries made after the backup are gone"
        assert IncomingRequest.select().count() == len(after), "no ticket without its delivery, nor the reverse"
        assert not Task.select().where(Task.id == later.id).exists()
        assert Account.by_username("after-backup") is None
        assert Configuration.default().ticket_type == "incident"
        assert {row.version for row in SchemaVersion.select()} == {version for version, _d, _s in MIGRATIONS}

    # The broker works on the restored database: a new delivery gets the next ticket number.
    newest = make_ticket()
    assert newest.number not in {number for _id, number, _request in after}
    assert "epm\tapi\tactive" in runner.invoke(args=["users", "list"]).output


def as_a_stopped_service_leaves_it(app):
    """No connection of this process's left open, the app-log writer's included, as after stopping the service."""
    log_store.flush(5)
    log_store.stop()
    close_pools()
    log_store.start(database.obj, app.extensions["settings"])


def as_a_release_before_chat_left_it():
    """The schema before step 26: no chat tables (one of them holds a key on the tickets), step 26 not recorded."""
    cascade = "" if database.obj.__class__.__name__.endswith("SqliteDatabase") else " CASCADE"
    for model in (ChatPost, SlackLink, SlackSignature):
        database.execute_sql(f'DROP TABLE "{model._meta.table_name}"{cascade}')
    SchemaVersion.delete().where(SchemaVersion.version == 26).execute()


def test_a_backup_taken_before_an_upgrade_restores_into_the_upgraded_database(app, runner, tmp_path, make_ticket):
    before = make_ticket()
    as_a_release_before_chat_left_it()
    backup_path = tmp_path / "before-upgrade.backup"
    assert runner.invoke(args=["backup", str(backup_path)]).exit_code == 0
    # The upgrade adds the chat tables back; tickets made since are posted to chat.
    upgraded = runner.invoke(args=["init"])
    assert "Applied migration: Slack and Teams" in upgraded.output, upgraded.output
    after = make_ticket()
    ChatPost.create(task=after, service="slack")
    ChatPost.create(task=before, service="teams")
    as_a_stopped_service_leaves_it(app)

    restored = runner.invoke(args=["restore", str(backup_path), "--yes"])

    assert restored.exit_code == 0, restored.output
    assert "Applied migration: Slack and Teams" in restored.output, "the backup brought up to date"
    with database.connection_context():
        assert [task.id for task in Task.select()] == [before.id]
        assert ChatPost.select().count() == 0, "the upgraded tables hold nothing from after the backup"
        assert {row.version for row in SchemaVersion.select()} == {version for version, _d, _s in MIGRATIONS}
    newest = make_ticket()
    ChatPost.create(task=newest, service="slack")


def test_a_postgresql_restore_drops_nothing_that_is_not_the_brokers(postgres_app, tmp_path):
    runner = postgres_app.test_cli_runner()
    assert runner.invoke(args=["init"]).exit_code == 0
    backup_path = tmp_path / "broker.backup"
    assert runner.invoke(args=["backup", str(backup_path)]).exit_code == 0
    with database.connection_context():
        # Another application's table in the same database, made after the backup.
        database.execute_sql("CREATE TABLE other_application_notes (note text)")
        database.execute_sql("INSERT INTO other_application_notes VALUES ('kept')")
        factories.account("after-backup", "user")
    as_a_stopped_service_leaves_it(postgres_app)

    restored = runner.invoke(args=["restore", str(backup_path), "--yes"])

    assert restored.exit_code == 0, restored.output
    with database.connection_context():
        assert database.execute_sql("SELECT note FROM other_application_notes").fetchall() == [("kept",)]
        assert Account.by_username("after-backup") is None
        # Another application's view reading a broker table: the restore would have to drop it too, so it stops.
        database.execute_sql("CREATE VIEW other_application_people AS SELECT username FROM sys_user")
        factories.account("after-the-view", "user")
    as_a_stopped_service_leaves_it(postgres_app)

    refused = runner.invoke(args=["restore", str(backup_path), "--yes"])

    assert refused.exit_code == 1
    assert "nothing was changed" in refused.output and "other_application_people depends on table sys_user" in (
        refused.output)
    with database.connection_context():
        assert Account.by_username("after-the-view") is not None
        assert database.execute_sql("SELECT count(*) FROM other_application_people").fetchone()[0] > 0
    close_pools()


def test_a_postgresql_backup_read_only_in_part_changes_nothing(postgres_app, tmp_path, monkeypatch):
    runner = postgres_app.test_cli_runner()
    assert runner.invoke(args=["init"]).exit_code == 0
    backup_path = tmp_path / "broker.backup"
    assert runner.invoke(args=["backup", str(backup_path)]).exit_code == 0
    with database.connection_context():
        factories.account("after-backup", "user")
    as_a_stopped_service_leaves_it(postgres_app)
    # pg_restore giving up in the middle of the backup's data (a file cut short, a disk error).
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_restore"
    real = shutil.which("pg_restore")
    fake.write_text(f'#!/bin/sh\ncase "$1" in --list) exec {real} "$@";; esac\n'
                    f'{real} "$@" | awk \'{{print}} /^COPY /{{copy=1; next}} copy{{exit}}\'\n'
                    'echo "pg_restore: error: could not read from input file: end of file" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")

    result = runner.invoke(args=["restore", str(backup_path), "--yes"])

    assert result.exit_code == 1
    assert f"pg_restore could not read {backup_path} (exit status 1); nothing was changed" in result.output
    with database.connection_context():
        assert Account.by_username("after-backup") is not None
        assert {row.version for row in SchemaVersion.select()} == {version for version, _d, _s in MIGRATIONS}
    close_pools()


def test_a_backup_does_not_overwrite_a_file_unless_told(app, runner, tmp_path):
    target = tmp_path / "kept.backup"
    target.write_text("an older backup")
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code != 0 and "--overwrite" in result.output
    assert target.read_text() == "an older backup"
    assert runner.invoke(args=["backup", str(target), "--overwrite"]).exit_code == 0
    assert target.read_text(errors="replace") != "an older backup"
    assert [path.name for path in tmp_path.iterdir() if "partial" in path.name] == []


def test_a_backup_into_a_missing_folder_says_so(app, runner, tmp_path):
    result = runner.invoke(args=["backup", str(tmp_path / "nowhere" / "broker.backup")])
    assert result.exit_code != 0 and "does not exist" in result.output


def test_restoring_something_that_is_not_a_backup_changes_nothing(app, runner, tmp_path, ticket):
    bogus = tmp_path / "not-a-backup"
    bogus.write_bytes(b"hello, this is not a database\n" * 100)
    close_pools()
    result = runner.invoke(args=["restore", str(bogus), "--yes"])
    assert result.exit_code != 0
    assert "is not a SQLite database" in result.output or "is not a JIT Broker backup" in result.output
    with database.connection_context():
        assert Task.select().where(Task.id == ticket.id).exists()


def test_restore_refuses_while_the_database_is_in_use(app, runner, tmp_path, ticket):
    backup_path = tmp_path / "broker.backup"
    assert runner.invoke(args=["backup", str(backup_path)]).exit_code == 0
    close_pools()
    holder = _other_connection(app)
    try:
        result = runner.invoke(args=["restore", str(backup_path), "--yes"])
    finally:
        holder.close()
    assert result.exit_code != 0 and "stop the web and scheduler processes" in result.output
    assert "Nothing was changed" in result.output


def _other_connection(app):
    """A connection another process would hold: an idle web worker's."""
    url = app.extensions["settings"].database_url
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        connection.execute("SELECT count(*) FROM task").fetchone()
        return connection
    import psycopg2

    return psycopg2.connect(url)


POSTGRES_WITH_PASSWORD = "postgresql://broker:n0t-for-your-eyes@127.0.0.1:5432/jitbroker"


def test_a_missing_pg_dump_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BackupError, match="pg_dump was not found on PATH: install the PostgreSQL client"):
        backup(POSTGRES_WITH_PASSWORD, tmp_path / "broker.backup")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_pg_dump_shows_what_it_said_but_never_the_password(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_dump"
    fake.write_text('#!/bin/sh\necho "pg_dump: error: password $PGPASSWORD refused for $*" >&2\nexit 1\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(BackupError) as failure:
        backup(POSTGRES_WITH_PASSWORD, tmp_path / "broker.backup")
    message = str(failure.value)
    assert "pg_dump could not back up PostgreSQL database 'jitbroker' on 127.0.0.1:5432 (exit status 1)" in message
    assert "pg_dump: error: password ******** refused for --no-password" in message
    assert "n0t-for-your-eyes" not in message
    assert not (tmp_path / "broker.backup").exists()


def test_pg_dump_gets_the_password_from_the_environment_not_its_arguments(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "pg_dump"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tools}/arguments\necho "$PGPASSWORD" > {tools}/password\n'
                    'for argument; do case "$argument" in --file=*) echo dump > "${argument#--file=}";; esac; done\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    written = backup(POSTGRES_WITH_PASSWORD, tmp_path / "broker.backup")
    assert written.read_text() == "dump\n"
    arguments = (tools / "arguments").read_text()
    assert "--format=custom" in arguments and "--dbname=postgresql://broker@127.0.0.1:5432/jitbroker" in arguments
    assert "n0t-for-your-eyes" not in arguments
    assert (tools / "password").read_text() == "n0t-for-your-eyes\n"


def test_restoring_a_sqlite_file_of_another_application_is_refused(tmp_path):
    other = tmp_path / "other.db"
    connection = sqlite3.connect(other)
    connection.execute("CREATE TABLE notes (text)")
    connection.commit()
    connection.close()
    database_file = tmp_path / "jitbroker.db"
    database_file.write_bytes(b"stays as it is")
    with pytest.raises(BackupError, match="is a SQLite database but not a JIT Broker one"):
        restore(f"sqlite:///{database_file}", other)
    assert database_file.read_bytes() == b"stays as it is"


def _damage_index(backup_path, index, key):
    """A copy of the SQLite backup whose `index` no longer matches its table: the bytes of `key` in the
    index's page changed, as a disk or a copy gone wrong would. quick_check does not notice."""
    connection = sqlite3.connect(backup_path)
    try:
        page, page_size = connection.execute("SELECT pageno, pgsize FROM dbstat WHERE name = ?", (index,)).fetchone()
    finally:
        connection.close()
    data = bytearray(backup_path.read_bytes())
    cells = data[(page - 1) * page_size:page * page_size]
    found = cells.rfind(key)
    assert found > 0, f"{key!r} is in the index's page"
    start = (page - 1) * page_size + found
    data[start:start + 1] = b"z"
    damaged = backup_path.with_name(f"damaged-{backup_path.name}")
    damaged.write_bytes(data)
    return damaged


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sqlite_backup_with_a_damaged_index_is_refused_and_the_database_kept(app, runner, tmp_path):
    factories.account("alice", "user")
    good = tmp_path / "broker.backup"
    assert runner.invoke(args=["backup", str(good)]).exit_code == 0
    damaged = _damage_index(good, "account_username", b"alice")
    checked = sqlite3.connect(damaged)
    assert checked.execute("PRAGMA quick_check").fetchone()[0] == "ok", "damage only an index check finds"
    checked.close()
    close_pools()

    result = runner.invoke(args=["restore", str(damaged), "--yes"])

    assert result.exit_code != 0
    assert f"{damaged} is damaged (SQLite's integrity_check:" in result.output
    with database.connection_context():
        assert Account.by_username("alice") is not None, "the database in place is kept, its look-ups intact"
