"""Backups of the broker's database, and putting one back.

SQLite is copied with its online backup API, in one step: the copy is one consistent
snapshot, and in WAL mode the service keeps reading and writing meanwhile. PostgreSQL is
dumped with `pg_dump` (custom format). Either way a backup is first written beside its
destination and renamed into place, so a failure never leaves half a backup under the name
asked for.

A PostgreSQL restore runs in one transaction (psql reading `pg_restore`'s script): it drops
the broker's own tables, those of this release's schema, restores the backup into the schema
left clean, and commits only when all of it succeeded. Dropping this release's tables, not
only the backup's, is what lets a backup taken before an upgrade go back: tables added since
would otherwise still hold keys on the backup's tables. Nothing that is not the broker's is
dropped, and nothing is dropped with CASCADE: should another application's object depend on a
broker table, the restore stops there and changes nothing. `jitbroker restore` then brings the
schema up to date. The database password reaches pg_dump, pg_restore and psql through the
environment, never their command line, and never appears in an error.
"""
import importlib
import os
import pkgutil
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

from playhouse.db_url import parse as parse_database_url

SQLITE_SCHEMES = ("sqlite", "sqlite+pool")
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgres+pool", "postgresql+pool")
# A table every broker database has since its first migration.
SCHEMA_TABLE = "jitbroker_schema_version"
POSTGRES_CLIENT_HINT = "install the PostgreSQL client tools (Debian: apt install postgresql-client)"


class BackupError(Exception):
    """A backup or restore that could not be made; the message says why and what to do."""


def database_kind(database_url):
    """"sqlite" or "postgresql" for a DATABASE_URL the broker accepts."""
    scheme = urlparse(database_url).scheme
    if scheme in SQLITE_SCHEMES:
        return "sqlite"
    if scheme in POSTGRES_SCHEMES:
        return "postgresql"
    raise BackupError(f"unsupported DATABASE_URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def describe(database_url):
    """The database as a person names it, without its password."""
    if database_kind(database_url) == "sqlite":
        return str(sqlite_path(database_url))
    parts = urlparse(database_url)
    host = parts.hostname or "localhost"
    return f"PostgreSQL database {unquote(parts.path.lstrip('/'))!r} on {host}:{parts.port or 5432}"


def backup(database_url, destination, overwrite=False):
    """Write a backup of the database at `database_url` to `destination`; returns its path."""
    destination = Path(destination)
    kind = database_kind(database_url)
    _check_destination(database_url, kind, destination, overwrite)
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        if kind == "sqlite":
            _backup_sqlite(sqlite_path(database_url), partial)
        else:
            _backup_postgres(database_url, partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def restore(database_url, source):
    """Replace the database at `database_url` with the backup at `source` (the service stopped)."""
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} does not exist or is not a file")
    if database_kind(database_url) == "sqlite":
        _restore_sqlite(source, sqlite_path(database_url))
    else:
        _restore_postgres(source, database_url)


def _check_destination(database_url, kind, destination, overwrite):
    if destination.is_dir():
        raise BackupError(f"{destination} is a folder: name the backup file, e.g. {destination / 'jitbroker.backup'}")
    if not destination.parent.is_dir():
        raise BackupError(f"the folder {destination.parent} does not exist")
    if kind == "sqlite" and destination.resolve() == sqlite_path(database_url).resolve():
        raise BackupError(f"{destination} is the database itself: write the backup somewhere else")
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists: choose a new name, or pass --overwrite to replace it")


# --- SQLite -------------------------------------------------------------------------------------

def sqlite_path(database_url):
    """The file of a sqlite:/// DATABASE_URL."""
    name = parse_database_url(database_url)["database"]
    if not name or name == ":memory:":
        raise BackupError("an in-memory SQLite database has nothing to back up or restore")
    return Path(name)


def _backup_sqlite(database_file, destination):
    if not database_file.is_file():
        raise BackupError(f"the database {database_file} does not exist (run `jitbroker init` first)")
    source = sqlite3.connect(f"file:{quote(str(database_file))}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(destination)
        try:
            # pages=-1: the whole database in one step, so the copy is one snapshot instead of
            # restarting whenever the running service commits a write.
            source.backup(target, pages=-1)
            # The copy stands alone: no -wal file beside it to carry along.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except sqlite3.Error as error:
        raise BackupError(f"could not back up {database_file}: {error}") from error
    finally:
        source.close()
    _check_sqlite_backup(destination)


def _check_sqlite_backup(path):
    """BackupError unless `path` is an intact SQLite file holding a broker database."""
    try:
        connection = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        try:
            # integrity_check, not quick_check: it also compares each index with its table, and a damaged
            # index restored would answer look-ups (an account by name, a ticket by RequestId) wrongly.
            problems = [row[0] for row in connection.execute("PRAGMA integrity_check(5)")]
            broker = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                                        (SCHEMA_TABLE,)).fetchone() is not None
        finally:
            connection.close()
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a SQLite database ({error})") from error
    if problems != ["ok"]:
        raise BackupError(f"{path} is damaged (SQLite's integrity_check: {'; '.join(problems)})")
    if not broker:
        raise BackupError(f"{path} is a SQLite database but not a JIT Broker one (no {SCHEMA_TABLE} table)")


def _ensure_sqlite_unused(database_file):
    """BackupError while another process (web worker, scheduler) has the database open.

    In WAL mode every open connection holds a shared lock on the file, so an exclusive lock
    taken without waiting succeeds only when nobody else has it open."""
    connection = sqlite3.connect(database_file, timeout=0, isolation_level=None)
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("COMMIT")
    except sqlite3.OperationalError as error:
        raise BackupError(f"{database_file} is in use ({error}): stop the web and scheduler processes, "
                          "then restore. Nothing was changed.") from error
    finally:
        connection.close()


def _restore_sqlite(source, database_file):
    _check_sqlite_backup(source)
    if database_file.exists():
        _ensure_sqlite_unused(database_file)
    database_file.parent.mkdir(parents=True, exist_ok=True)
    partial = database_file.with_name(f".{database_file.name}.restoring-{os.getpid()}")
    try:
        shutil.copyfile(source, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        # A -wal or -shm file left by the database being replaced must not be applied to the backup.
        for suffix in ("-wal", "-shm"):
            Path(f"{database_file}{suffix}").unlink(missing_ok=True)
        os.replace(partial, database_file)
    finally:
        partial.unlink(missing_ok=True)


# --- PostgreSQL ---------------------------------------------------------------------------------

def _postgres_target(database_url):
    """(libpq connection URI without the password, environment carrying the password)."""
    parts = urlparse(database_url)
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    uri = f"postgresql://{netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")
    environment = {**os.environ}
    if parts.password is not None:
        environment["PGPASSWORD"] = unquote(parts.password)
    return uri, environment


def _run_postgres_tool(database_url, tool, arguments, doing):
    uri, environment = _postgres_target(database_url)
    executable = shutil.which(tool)
    if executable is None:
        raise BackupError(f"{tool} was not found on PATH: {POSTGRES_CLIENT_HINT}, of the server's major version "
                          "or newer")
    try:
        result = subprocess.run([executable, "--no-password", f"--dbname={uri}", *arguments], env=environment,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BackupError(f"could not run {executable}: {error}") from error
    if result.returncode != 0:
        said = _redacted(result.stderr.strip() or result.stdout.strip(), database_url) or "(it printed nothing)"
        raise BackupError(f"{tool} could not {doing} {describe(database_url)} (exit status {result.returncode}):\n"
                          f"{said}")
    return result


def _redacted(text, database_url):
    password = urlparse(database_url).password
    for secret in {password, unquote(password)} if password else ():
        text = text.replace(secret, "********")
    return text


def _backup_postgres(database_url, destination):
    _run_postgres_tool(database_url, "pg_dump", ["--format=custom", f"--file={destination}"], "back up")


# PostgreSQL objects of the broker's that are not tables (nor go with one): migration 27's trigger function.
BROKER_FUNCTIONS = ("configuration_version()",)


def broker_tables():
    """The tables the broker's schema has in this release: those its models declare (every `models` module under
    app/, and the migrations' own), the schema version's among them. A model another one extends (BaseModel,
    QueuedWork, JitRequest) is a base with no table of its own."""
    import peewee

    import app
    from app.db import database

    importlib.import_module("app.models")
    importlib.import_module("app.migrations")
    for module in pkgutil.walk_packages(app.__path__, "app."):
        if module.name.rsplit(".", 1)[-1] == "models":
            importlib.import_module(module.name)

    def models(base):
        for model in base.__subclasses__():
            yield model
            yield from models(model)

    return sorted({model._meta.table_name for model in models(peewee.Model)
                   if model._meta.database is database and not model.__subclasses__()})


def _tool(name):
    executable = shutil.which(name)
    if executable is None:
        raise BackupError(f"{name} was not found on PATH: {POSTGRES_CLIENT_HINT}")
    return executable


def _restore_postgres(source, database_url):
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    listing = subprocess.run([pg_restore, "--list", str(source)], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, check=False)
    if listing.returncode != 0 or f" {SCHEMA_TABLE} " not in listing.stdout:
        said = listing.stderr.strip() or f"no {SCHEMA_TABLE} table in it"
        raise BackupError(f"{source} is not a JIT Broker backup made by pg_dump (custom format): {said}")
    tables = ", ".join(f'"{name}"' for name in broker_tables())
    functions = "".join(f"DROP FUNCTION IF EXISTS {function};\n" for function in BROKER_FUNCTIONS)
    clean_schema = f"BEGIN;\nDROP TABLE IF EXISTS {tables};\n{functions}".encode()
    uri, environment = _postgres_target(database_url)
    with tempfile.TemporaryFile() as read_errors, tempfile.TemporaryFile() as restore_errors:
        # pg_restore writes the backup as SQL; psql runs it after the drops, in the transaction they began.
        reader = subprocess.Popen([pg_restore, "--no-owner", "--file=-", str(source)], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=read_errors)
        try:
            writer = subprocess.Popen([psql, "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
                                       f"--dbname={uri}", "--file=-"], env=environment, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=restore_errors)
        except OSError as error:
            reader.kill()
            reader.wait()
            raise BackupError(f"could not run {psql}: {error}") from error
        psql_stopped = False
        try:
            writer.stdin.write(clean_schema)
            shutil.copyfileobj(reader.stdout, writer.stdin)
            # COMMIT only after the whole script: a script cut short (pg_restore failing) ends the session
            # with the transaction open, and PostgreSQL rolls it back.
            if reader.wait() == 0:
                writer.stdin.write(b"COMMIT;\n")
            writer.stdin.close()
        except BrokenPipeError:
            psql_stopped = True  # at an error (ON_ERROR_STOP): its transaction is rolled back
        finally:
            reader.kill()  # still writing only when psql stopped
            reader.wait()
            reader.stdout.close()
            try:
                writer.stdin.close()
            except BrokenPipeError:
                pass
            writer.wait()
        if reader.returncode != 0 and not psql_stopped:
            read_errors.seek(0)
            said = read_errors.read().decode(errors="replace").strip() or "(it printed nothing)"
            raise BackupError(f"pg_restore could not read {source} (exit status {reader.returncode}); nothing was "
                              f"changed:\n{said}")
        if writer.returncode != 0:
            restore_errors.seek(0)
            said = _redacted(restore_errors.read().decode(errors="replace").strip(), database_url)
            raise BackupError(f"psql could not restore {source} into {describe(database_url)} (exit status "
                              f"{writer.returncode}); nothing was changed:\n{said or '(it printed nothing)'}")
