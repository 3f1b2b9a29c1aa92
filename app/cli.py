"""The `jitbroker` console entry (also reachable as `flask --app app ...`); the commands live in app/commands.py.

What any command can meet before or beside its own work is said here, once, in one line without a traceback:
settings the broker cannot use (exit status 2, as for a wrong argument) and a database `jitbroker init` has
not prepared, or not upgraded for this release (exit status 1)."""
import click
import peewee
from flask.cli import FlaskGroup, ScriptInfo

from app import create_app
from app.settings import SettingsError

NO_SCHEMA = "the database has no schema yet: run `jitbroker init`"
OLDER_SCHEMA = "the database's schema is older than this release: run `jitbroker init` to upgrade it"


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
            problem = schema_problem()
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


def schema_problem():
    """NO_SCHEMA or OLDER_SCHEMA when the database lacks what this release's migrations make, else None."""
    from app.db import close_pools, database
    from app.migrations import MIGRATIONS
    from app.models import SchemaVersion

    try:
        close_pools()  # a connection the failed command left behind is not asked again
        with database.connection_context():
            if not database.table_exists(SchemaVersion._meta.table_name):
                return NO_SCHEMA
            done = {row.version for row in SchemaVersion.select(SchemaVersion.version)}
    except peewee.DatabaseError:
        return None
    finally:
        close_pools()
    return OLDER_SCHEMA if {version for version, _description, _step in MIGRATIONS} - done else None


cli = BrokerGroup(name="jitbroker", create_app=create_app, help="JIT Broker: EPM just-in-time approvals.")
