"""`jitbroker itsm …`: the ITSM connections policies validate against, and "Validate Settings"."""
from contextlib import contextmanager

import click
from flask.cli import with_appcontext

from app.audit import service as audit
from app.db import database
from app.errors import BrokerError
from app.itsm import CONNECTOR_TYPES, connector_for
from app.itsm import connections as service
from app.itsm.base import ItsmError
from app.itsm.models import ItsmConnection


def assignments(pairs):
    """`name=value` arguments as a dict; `option.name=value` goes into its "options"."""
    values = {}
    for pair in pairs:
        name, separator, value = pair.partition("=")
        if not separator:
            raise click.ClickException(f"{pair!r} is not key=value")
        name = name.strip()
        if name.startswith("option."):
            values.setdefault("options", {})[name[len("option."):]] = value
        else:
            values[name] = value
    return values


@contextmanager
def connected():
    """A database connection for a command; a BrokerError raised inside stops the command with its message."""
    with database.connection_context():
        try:
            yield
        except BrokerError as error:
            raise click.ClickException(error.described()) from None


def _connection(name):
    connection = service.find_connection(name)
    if connection is None:
        raise click.ClickException(f"No ITSM connection named {name!r}")
    return connection


itsm = click.Group("itsm", help="External ITSMs that policies validate ticket references against.")


@itsm.command("list")
@with_appcontext
def itsm_list():
    """Connections with their kind, address, and the last Validate Settings result."""
    with database.connection_context():
        rows = list(ItsmConnection.select().order_by(ItsmConnection.name))
        for connection in rows:
            click.echo("\t".join([connection.name, connection.kind, "enabled" if connection.enabled else "disabled",
                                  connection.base_url or "-", connection.last_validation or "not validated"]))
    if not rows:
        click.echo("No ITSM connections.")


@itsm.command("show")
@click.argument("name")
@with_appcontext
def itsm_show(name):
    """Every field of a connection; secrets only as set or not."""
    with database.connection_context():
        for field, value in service.masked(_connection(name)).items():
            click.echo(f"{field} = {value}")


@itsm.command("add")
@click.argument("name")
@click.argument("kind", type=click.Choice(list(CONNECTOR_TYPES)))
@click.argument("settings", nargs=-1)
@with_appcontext
def itsm_add(name, kind, settings):
    """Add one: `jitbroker itsm add corp servicenow base_url=https://corp.service-now.com auth_method=basic
    username=svc secret=…` (options as option.KEY=VALUE)."""
    with connected():
        connection = service.create_connection({"name": name, "kind": kind, **assignments(settings)},
                                               audit.cli_actor())
    click.echo(f"Added {CONNECTOR_TYPES[kind].label} connection {connection.name!r}. "
               f"Check it with: jitbroker itsm validate {connection.name}")


@itsm.command("set")
@click.argument("name")
@click.argument("settings", nargs=-1, required=True)
@with_appcontext
def itsm_set(name, settings):
    """Change fields of a connection (options as option.KEY=VALUE replace the option set given)."""
    with connected():
        connection = _connection(name)
        values = assignments(settings)
        if "options" in values:
            values["options"] = {**(connection.options or {}), **values["options"]}
        service.update_connection(connection, values, audit.cli_actor())
    click.echo(f"Updated {', '.join(sorted(values))} of {name!r}.")


@itsm.command("remove")
@click.argument("name")
@with_appcontext
def itsm_remove(name):
    """Delete a connection."""
    with connected():
        service.delete_connection(_connection(name), audit.cli_actor())
    click.echo(f"Removed ITSM connection {name!r}.")


@itsm.command("validate")
@click.argument("name")
@with_appcontext
def itsm_validate(name):
    """Validate Settings: check the settings are complete and the ITSM accepts them."""
    with database.connection_context():
        ok, message = service.validate_connection(_connection(name))
    if not ok:
        raise click.ClickException(message)
    click.echo(message)


@itsm.command("lookup")
@click.argument("name")
@click.argument("number")
@with_appcontext
def itsm_lookup(name, number):
    """Look a ticket up as the policy checks would, and print what the broker reads."""
    with database.connection_context():
        try:
            ticket = connector_for(_connection(name)).lookup(number)
        except ItsmError as error:
            raise click.ClickException(str(error)) from None
    if ticket is None:
        raise click.ClickException(f"{number} was not found in {name!r}")
    for field in ("number", "state", "approval", "window_start", "window_end", "requester"):
        click.echo(f"{field} = {getattr(ticket, field) or ''}")
