"""JIT Broker: turns EPM's just-in-time access requests into tickets approvers decide.

`create_app` assembles the service: settings, the database, error handling,
authentication, the feature blueprints and the `jitbroker` CLI. Nothing connects
or starts at import time.
"""
from dataclasses import fields
from types import FunctionType

from flask import Flask

from app.settings import ROOT, Settings

SETTING_NAMES = {field.name for field in fields(Settings)}


class BrokerFlask(Flask):
    """Flask, asking once per function whether a view or hook is a coroutine.

    Flask asks `inspect` before each call of every before-, after- and teardown hook
    and view, a dozen times per request; the answer never changes for a function.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sync_functions = {}

    def ensure_sync(self, func):
        if not isinstance(func, FunctionType):
            return super().ensure_sync(func)
        found = self._sync_functions.get(func)
        if found is None:
            found = self._sync_functions[func] = super().ensure_sync(func)
        return found


def create_app(config=None):
    """Build the Flask app.

    `config` may hold settings overrides (lower-case names of `Settings`) and Flask
    options (upper-case, e.g. TESTING); the rest comes from config.toml and the
    environment.
    """
    config = dict(config or {})
    overrides = {key: value for key, value in config.items() if key in SETTING_NAMES}
    flask_options = {key: value for key, value in config.items() if key not in SETTING_NAMES}

    app = BrokerFlask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                      instance_path=str(ROOT / "instance"))
    settings = Settings.load(overrides).with_secret_key(app.instance_path)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.config.update(flask_options)
    app.extensions["settings"] = settings

    from app import db, errors, http, openapi, policies, secrets, servicenow_api, web
    from app.audit import keys as audit_keys
    from app.auth import basic
    from app.chat import outbox as chat
    from app.chat.interactions import bp as slack_bp
    from app.commands import register_commands
    from app.decisions import delivery as decisions_delivery
    from app.decisions.api import bp as decisions_api_bp
    from app.health import bp as health_bp
    from app.intake.views import bp as intake_bp
    from app.logs.setup import configure_logging
    from app.notify import service as notify
    from app.ops import metrics
    from app.ops.api import bp as ops_api_bp
    from app.tickets.api import bp as tickets_api_bp

    app.url_map.converters["int"] = http.RowIdConverter  # before any route is added
    db.init_database(settings)
    secrets.configure(settings.secret_key)
    db.init_app(app)
    errors.init_app(app)
    basic.init_app(app, settings)
    app.register_blueprint(health_bp)
    app.register_blueprint(intake_bp)
    app.register_blueprint(tickets_api_bp)
    app.register_blueprint(decisions_api_bp)
    app.register_blueprint(ops_api_bp)
    app.register_blueprint(slack_bp)
    app.register_blueprint(servicenow_api.bp)
    web.init_app(app)
    configure_logging(app)
    audit_keys.init_app(app, settings)
    metrics.init_app(app)
    decisions_delivery.init_app(app)
    notify.init_app(app)
    chat.init_app(app)
    policies.init_app(app)
    openapi.init_app(app)
    http.init_app(app)
    register_commands(app)
    return app
