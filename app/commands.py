"""The `jitbroker` commands: init, users, config and the outbox here, each package's group beside them,
all registered on the app by `register_commands`."""
import re
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from app import contract
from app.audit import service as audit
from app.audit.commands import audit as audit_commands
from app.chat.commands import slack as slack_commands
from app.db import close_pools, database, is_sqlite, write_transaction
from app.errors import BrokerError
from app.ops.commands import COMMANDS as OPS_COMMANDS
from app.jobs.commands import COMMANDS as JOB_COMMANDS
from app.notify.commands import COMMANDS as NOTIFY_COMMANDS, users_set
from app.itsm.commands import itsm as itsm_commands
from app.policies.commands import policy as policy_commands


# Bytes that are not UTF-8 (a Latin-1 terminal's "é") reach Python as lone surrogates (surrogateescape);
# no database, audit hash or log line can encode them.
_NOT_UTF8 = re.compile("[\ud800-\udfff]")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
NOT_UTF8_ADVICE = "set the terminal to UTF-8 and enter it again. Nothing was changed."


def _fail(message):
    raise click.ClickException(message)


def _not_utf8(text, what=None):
    """Why `text` is not UTF-8 text, or None when it is. Names the byte, never the value (it may be a secret);
    `key=value` text is named by its key."""
    match = _NOT_UTF8.search(text)
    if match is None:
        return None
    start = 0
    if what is None:
        key, separator, _value = text.partition("=")
        if separator and _FIELD_NAME.fullmatch(key.strip()):
            what, start = f"the value of {key.strip()}", len(key) + 1
        else:
            what = "the value"
    code = ord(match.group())
    found = f"byte 0x{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else f"unpaired surrogate U+{code:04X}"
    return f"{what} is not UTF-8 text ({found} at character {match.start() - start + 1}): {NOT_UTF8_ADVICE}"


class Utf8Text(click.ParamType):
    """A command's text parameter, refused as a usage error (exit status 2) when it is not UTF-8."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def convert(self, value, param, ctx):
        value = self.inner.convert(value, param, ctx)
        reason = _not_utf8(value) if isinstance(value, str) else None
        if reason:
            self.fail(reason, param, ctx)
        return value

    def get_metavar(self, param, ctx):
        return self.inner.get_metavar(param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        return self.inner.shell_complete(ctx, param, incomplete)

    def to_info_dict(self):
        return self.inner.to_info_dict()


def _text_parameters_refuse_non_utf8(command):
    """Give each text parameter of `command` and its subcommands the UTF-8 check; paths stay as the system has them."""
    for param in command.params:
        if isinstance(param.type, (click.types.StringParamType, click.types.UnprocessedParamType)):
            param.type = Utf8Text(param.type)
    for subcommand in getattr(command, "commands", {}).values():
        _text_parameters_refuse_non_utf8(subcommand)


def _password_from_stdin():
    """The first line of standard input; a usage error when it is not UTF-8."""
    what = "The password on standard input"
    try:
        line = sys.stdin.readline().rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise click.UsageError(f"{what} is not UTF-8 text (byte 0x{error.object[error.start]:02X} at byte "
                               f"{error.start + 1}): {NOT_UTF8_ADVICE}") from None
    reason = _not_utf8(line, what)
    if reason:
        raise click.UsageError(reason)
    return line


def _broker_errors(function):
    """Turn a BrokerError into a one-line reason and a non-zero exit."""
    from functools import wraps

    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except BrokerError as error:
            _fail(error.described())
    return wrapper


@click.command("init")
@with_appcontext
@_broker_errors
def init_command():
    """Create or upgrade the schema, the Default configuration and a first admin account."""
    from app.auth.accounts import create_account
    from app.migrations import upgrade
    from app.models import Account, Configuration

    with database.connection_context():
        for description in upgrade():
            click.echo(f"Applied migration: {description}")
        Configuration.default()
        if not Account.select().where(Account.role == contract.ROLE_ADMIN).exists():
            with write_transaction():
                account, password = create_account("admin", contract.ROLE_ADMIN)
                audit.record(audit.USER_CREATE, audit.cli_actor(), "account", account.username,
                             {"role": account.role}, source_address="local")
        else:
            account = password = None
    click.echo("Database is ready.")
    if password is None:
        click.echo("An admin account exists; `jitbroker users set-password admin` gives it a new password.")
        return
    # Last and set apart, so it is not lost among the migrations (or the demo's output after it).
    rule = "=" * 72
    click.echo(f"\n{rule}\n  Created admin account {account.username!r} with password: {password}\n"
               f"  Sign in with it now: it is shown only this once (`jitbroker users set-password "
               f"{account.username}` sets a new one), and choose your own at that first sign-in.\n{rule}\n")


users = click.Group("users", help="Manage broker accounts.")


@users.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(contract.ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
@_broker_errors
def users_create(name, role, password_stdin):
    """Create an account; prints a generated password unless one is given on stdin."""
    from app.auth.accounts import create_account

    password = _password_from_stdin() if password_stdin else None
    with database.connection_context(), write_transaction():
        account, password_set = create_account(name, role, password)
        audit.record(audit.USER_CREATE, audit.cli_actor(), "account", account.username, {"role": account.role},
                     source_address="local")
    if password_stdin:
        click.echo(f"Created {account.role} account {account.username!r}.")
    else:
        click.echo(f"Created {account.role} account {account.username!r} with password: {password_set}")
    if account.must_change_password:
        click.echo(f"{account.username!r} must choose a new password at the first sign-in.")


@users.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--keep-previous-hours", type=click.IntRange(0, 720), default=0,
              help="api accounts: accept the old password too for this many hours (rotating EPM's credentials).")
@with_appcontext
@_broker_errors
def users_set_password(name, password_stdin, keep_previous_hours):
    """Set a new password for an account; prints a generated one unless given on stdin."""
    from datetime import timedelta

    from app.auth.accounts import generate_password, set_password
    from app.models import Account

    password = _password_from_stdin() if password_stdin else generate_password()
    with database.connection_context():
        account = Account.by_username(name)
        if account is None:
            _fail(f"No account named {name!r}")
        with write_transaction():
            set_password(account, password, timedelta(hours=keep_previous_hours) if keep_previous_hours else None)
            audit.record(audit.USER_PASSWORD_RESET, audit.cli_actor(), "account", account.username,
                         source_address="local")
    click.echo(f"Password changed for {name!r}." if password_stdin else f"New password for {name!r}: {password}")
    if account.must_change_password:
        click.echo(f"{name!r} must choose a new password at the next sign-in.")


@users.command("list")
@with_appcontext
def users_list():
    """List accounts with their role and whether they are active."""
    from app.models import Account

    with database.connection_context():
        for account in Account.select().order_by(Account.username):
            status = "active" if account.active else "inactive"
            click.echo(f"{account.username}\t{account.role}\t{status}")


config = click.Group("config", help="Show or change the integration configuration.")


@config.command("show")
@with_appcontext
def config_show():
    """Print every configuration field; secrets are masked."""
    from app.configuration import FIELDS, masked_values
    from app.models import Configuration

    with database.connection_context():
        values = masked_values(Configuration.default())
    for field in FIELDS:
        click.echo(f"{field.name} = {values[field.name]}")


@config.command("set")
@click.argument("assignments", nargs=-1, required=True)
@with_appcontext
@_broker_errors
def config_set(assignments):
    """Set fields: `jitbroker config set pmc_host=acme-services.pm.beyondtrustcloud.com auto_close=true`."""
    from app.configuration import update_configuration

    values = {}
    for assignment in assignments:
        name, separator, value = assignment.partition("=")
        if not separator:
            _fail(f"{assignment!r} is not key=value")
        values[name.strip()] = value
    with database.connection_context():
        _record, warnings = update_configuration(values, actor=audit.cli_actor(), source_address="local")
    click.echo(f"Updated {', '.join(values)}.")
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)


outbox = click.Group("outbox", help="Decisions waiting for, or delivered to, EPM.")


@outbox.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include delivered decisions.")
@with_appcontext
def outbox_list(show_all):
    """List decision deliveries: ticket, decision, status, attempts, next attempt, last error."""
    from app.models import Decision, Task

    with database.connection_context():
        query = Decision.select(Decision, Task).join(Task).order_by(Decision.id)
        if not show_all:
            query = query.where(Decision.status != contract.DELIVERY_DELIVERED)
        rows = list(query)
        for decision in rows:
            click.echo("\t".join([
                decision.task.number, decision.decision, decision.status, f"attempts={decision.attempts}",
                f"next={decision.next_attempt_at:%Y-%m-%d %H:%M:%S}", decision.last_error or "",
            ]))
    if not rows:
        click.echo("The outbox is empty.")


@outbox.command("retry-all")
@with_appcontext
def outbox_retry_all():
    """Send every pending decision now."""
    from app.decisions.delivery import retry_all

    with database.connection_context():
        results = retry_all()
        for decision in results:
            click.echo(f"{decision.task.number}\t{decision.status}\t{decision.last_error or ''}")
    click.echo(f"{len(results)} pending decisions attempted.")


@click.command("test-connection")
@with_appcontext
def test_connection_command():
    """Fetch a token from EPM and read one record: prints Connection OK or the failure."""
    from app.epm.client import EpmClient
    from app.epm.errors import EpmError
    from app.models import Configuration
    from app.logs.outbound import outbound_call_recorder

    with database.connection_context():
        configuration = Configuration.default()
    try:
        click.echo(EpmClient.from_configuration(configuration, outbound_call_recorder(configuration)).test_connection())
    except (EpmError, ValueError) as error:
        _fail(str(error))


@click.command("fake-epm", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def fake_epm_command(arguments):
    """Run a fake EPM tenant on loopback (options: jitbroker fake-epm --help)."""
    from app.epm.fake import main

    raise SystemExit(main(list(arguments)))


@click.command("demo-setup")
@click.option("--env-file", default="instance/demo.env", show_default=True)
@click.option("--fake-epm-url", default="http://127.0.0.1:8200", show_default=True)
@with_appcontext
@_broker_errors
def demo_setup_command(env_file, fake_epm_url):
    """Prepare the README demo: an api account for the fake EPM, and the broker pointed at it."""
    from app.demo import DEMO_API_ACCOUNT, prepare_demo

    with database.connection_context():
        wired = prepare_demo(env_file, fake_epm_url)
    click.echo(f"The fake EPM delivers as {DEMO_API_ACCOUNT!r} (password in {env_file}).")
    if not wired:
        click.echo("The EPM connection is already configured for another host; the demo leaves it alone.")


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace PATH if it exists.")
@with_appcontext
def backup_command(path, overwrite):
    """Back up the database to PATH; safe while the service runs (SQLite: online backup, PostgreSQL: pg_dump)."""
    from app.backup import BackupError, backup, describe

    url = current_app.extensions["settings"].database_url
    try:
        written = backup(url, path, overwrite=overwrite)
    except BackupError as error:
        _fail(str(error))
    click.echo(f"Backed up {describe(url)} to {written} ({written.stat().st_size} bytes).")


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Confirm that the database's contents are replaced by the backup's.")
@with_appcontext
def restore_command(path, yes):
    """Replace the database with the backup at PATH and bring its schema up to date.

    Stop the web and scheduler processes first; the README's "Backup and restore" gives the steps."""
    from app.backup import BackupError, describe, restore
    from app.migrations import upgrade

    url = current_app.extensions["settings"].database_url
    if not yes:
        _fail(f"This replaces everything in {describe(url)} with the backup {path}. Stop the web and scheduler "
              "processes, then run again with --yes.")
    close_pools()
    if not is_sqlite():
        others = _other_postgres_sessions()
        if others:
            _fail(f"{others} other connection(s) to {describe(url)} are open: stop the web and scheduler processes "
                  "(and close other clients), then restore. Nothing was changed.")
    try:
        restore(url, path)
    except BackupError as error:
        _fail(str(error))
    with database.connection_context():
        applied = upgrade()
    close_pools()
    click.echo(f"Restored {describe(url)} from {path}.")
    for description in applied:
        click.echo(f"Applied migration: {description}")
    click.echo("Start the web and scheduler processes again.")


def _other_postgres_sessions():
    """How many other sessions are connected to this PostgreSQL database."""
    with database.connection_context():
        count = database.execute_sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND backend_type = 'client backend' AND pid <> pg_backend_pid()").fetchone()[0]
    close_pools()
    return count


COMMANDS = [init_command, users, config, outbox, test_connection_command, fake_epm_command,
            demo_setup_command, backup_command, restore_command, *JOB_COMMANDS, *NOTIFY_COMMANDS, audit_commands,
            policy_commands, itsm_commands, slack_commands, *OPS_COMMANDS]

users.add_command(users_set)


def register_commands(app):
    """Add every `jitbroker` command to `app.cli`, its text parameters refusing what is not UTF-8."""
    for command in COMMANDS:
        _text_parameters_refuse_non_utf8(command)
        app.cli.add_command(command)
