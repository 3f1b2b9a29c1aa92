"""The `jitbroker` console entry (also reachable as `flask --app app ...`); the commands live in app/commands.py.

What any command can meet before or beside its own work is said here, once, in one line without a traceback:
settings the broker cannot use (exit status 2, as for a wrong argument), a database that cannot be reached, and
one `jitbroker init` has not prepared, or not upgraded for this release (exit status 1)."""
import click
import peewee
from flask.cli import FlaskGroup, ScriptInfo

from app import create_app
from app.logs.redaction import redact
from app.settings import SettingsError

NO_SCHEMA = "the database has no schema yet: run `jitbroker init`"
OLDER_SCHEMA = "the database's schema is older than this release: run `jitbroker init` to upgrade it"
UNREACHABLE = "the database cannot be reached: {}"


class SettingsProblem(click.ClickException):
    """A setting (config.toml or the environment) the broker cannot use; exits 2, like a usage error."""

    exit_code = 2


class BrokerGroup(FlaskGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SettingsError as error:
            raise SettingsProblem(str(error)) from None
        except peewee.DatabaseError:
            problem = database_problem()
            if problem is None:
                raise
            raise click.ClickException(problem) from None

    def list_commands(self, ctx):
        # `jitbroker --help` lists the app's commands; with settings it cannot load, say why in one line and
        # list the rest (Flask would print the traceback).
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except SettingsError as error:
            click.echo(f"Error: {error}\n", err=True)
            return super(FlaskGroup, self).list_commands(ctx)
        return super().list_commands(ctx)


def database_problem():
    """What keeps every command from the database, in one line: UNREACHABLE with the driver's first line (any
    password in it masked) when a new connection fails, NO_SCHEMA or OLDER_SCHEMA when the database lacks what
    this release's migrations make; None when it is none of these (the command's own error)."""
    from app.db import close_pools, database, is_unavailable
    from app.migrations import MIGRATIONS
    from app.models import SchemaVersion

    try:
        close_pools()  # a connection the failed command left behind is not asked again
        with database.connection_context():
            if not database.table_exists(SchemaVersion._meta.table_name):
                return NO_SCHEMA
            done = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
    except peewee.DatabaseError as error:
        if not is_unavailable(error):
            return None
        said = str(error).strip().splitlines() or [error.__class__.__name__]
        return UNREACHABLE.format(redact(said[0]))
    finally:
        close_pools()
    return OLDER_SCHEMA if {version for version, _description, _step in MIGRATIONS} - done else None


cli = BrokerGroup(name="jitbroker", create_app=create_app, help="JIT Broker: EPM just-in-time approvals.")
