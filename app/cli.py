"""The `jitbroker` console entry (also reachable as `flask --app app ...`); the commands live in app/commands.py."""
from flask.cli import FlaskGroup

from app import create_app

cli = FlaskGroup(name="jitbroker", create_app=create_app, help="JIT Broker: EPM just-in-time approvals.")
