"""The `jitbroker` entry itself: what any command meets before its own work (settings it cannot use, a database
`jitbroker init` has not prepared) is one line saying what to do, never a traceback."""
import pytest
from click.testing import CliRunner

from app.cli import cli
from app.db import close_pools, database
from app.models import SchemaVersion
from tests.conftest import scratch_postgres_database


@pytest.fixture
def postgres_url():
    """A PostgreSQL database of this test's own: one `jitbroker init` has not prepared yet."""
    yield from scratch_postgres_database()


def jitbroker(*args, **environ):
    """Run `jitbroker ARGS` as a shell would, with `environ` as its environment; returns the result."""
    environ = {"SECRET_KEY": "test-secret-key", "JITBROKER_CONFIG": None, **environ}
    try:
        return CliRunner().invoke(cli, list(args), env=environ)
    finally:
        if database.obj is not None:  # None while this process has made no app yet (settings refused)
            close_pools()


def one_line(result):
    assert isinstance(result.exception, SystemExit), "no traceback: the command exits with its status"
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.mark.parametrize("args", [["config", "set", "client_id=abc"], ["config", "show"],
                                  ["users", "create", "epm", "--role", "api"], ["users", "list"]])
def test_a_command_before_init_says_to_run_init(database_url, args):
    result = jitbroker(*args, DATABASE_URL=database_url)
    assert result.exit_code == 1
    assert one_line(result) == "Error: the database has no schema yet: run `jitbroker init`"


def test_a_command_on_a_schema_older_than_the_release_says_to_run_init(database_url):
    assert jitbroker("init", DATABASE_URL=database_url).exit_code == 0
    # The database as a release before step 2 left it: no decisions table, step 2 not recorded.
    from app import create_app

    with create_app({"database_url": database_url, "secret_key": "test-secret-key"}).app_context():
        with database.connection_context():
            cascade = "" if database_url.startswith("sqlite") else " CASCADE"
            database.execute_sql(f"DROP TABLE x_bets_pmc_jit_decision{cascade}")
            SchemaVersion.delete().where(SchemaVersion.version == 2).execute()
        close_pools()

    result = jitbroker("outbox", "list", DATABASE_URL=database_url)
    assert result.exit_code == 1
    assert one_line(result) == ("Error: the database's schema is older than this release: run `jitbroker init` "
                                "to upgrade it")
    assert jitbroker("init", DATABASE_URL=database_url).exit_code == 0
    assert jitbroker("outbox", "list", DATABASE_URL=database_url).output == "The outbox is empty.\n"


@pytest.mark.parametrize("environ, config, said", [
    ({"PORT": "abc"}, None, "Error: setting port must be an integer, not 'abc' (PORT)"),
    ({"DATABASE_URL": "mysql://broker:pw@db.example/jit"}, None,
     "Error: [database] url or DATABASE_URL names a mysql database: use sqlite:///path/to/file.db or "
     "postgresql://user:password@host:5432/name"),
    ({}, '[database]\nmax_connections = "eight"\n',
     "Error: setting max_connections must be an integer, not 'eight' ([database] max_connections)"),
    ({}, "[intake]\nmax_body_bytes = -1\n",
     "Error: [intake] max_body_bytes must be a number of bytes from 1024 to 1073741824, not -1"),
])
def test_settings_the_broker_cannot_use_are_one_line_and_exit_status_2(tmp_path, environ, config, said):
    environ = {"DATABASE_URL": f"sqlite:///{tmp_path}/jitbroker.db", **environ}
    if config is not None:
        (tmp_path / "config.toml").write_text(config)
        environ["JITBROKER_CONFIG"] = str(tmp_path / "config.toml")
    for args in (["init"], ["config", "show"]):
        result = jitbroker(*args, **environ)
        assert result.exit_code == 2
        assert one_line(result) == said
    listed = jitbroker("--help", **environ)
    assert listed.exit_code == 0 and said in listed.output and "Traceback" not in listed.output


@pytest.mark.parametrize("database_url", ["postgresql://broker:pa55-w0rd@127.0.0.1:1/jitbroker",
                                          "sqlite:////proc/jitbroker.db"])
@pytest.mark.parametrize("args", [["purge", "--dry-run"], ["jobs", "status"], ["users", "list"],
                                  ["replay", "0123456789abcdef0123456789abcdef"]])
def test_a_command_while_the_database_is_down_is_one_line_and_exit_status_1(database_url, args):
    result = jitbroker(*args, DATABASE_URL=database_url)

    assert result.exit_code == 1
    line = one_line(result)
    assert line.startswith("Error: the database cannot be reached: "), line
    assert ("Connection refused" if database_url.startswith("postgresql") else "unable to open") in line
    assert "pa55-w0rd" not in line
