"""Schema creation and upgrades: an ordered list of steps, each run once per database.

`upgrade()` is the only way tables are created or changed. A step is never edited
once released: a new column or table is a new step appended to MIGRATIONS, using
`playhouse.migrate` for changes to existing tables.
"""
from app import models
from app.db import database, is_sqlite, write_transaction


def _initial_schema(_migrator):
    database.create_tables([
        models.Account, models.Configuration, models.NumberCounter, models.Task,
        models.ApplicationAccessTicket, models.AdminTicket, models.WorkNote, models.IncomingRequest,
    ])
    database.execute_sql("CREATE INDEX task_newest ON task (opened_at DESC, id DESC)")


def _decisions(_migrator):
    database.create_tables([models.Decision])


def _audit_log(_migrator):
    from app.audit.models import AuditEntry

    database.create_tables([AuditEntry])


def _policies_and_itsm(_migrator):
    from app.itsm.models import ItsmConnection
    from app.policies.models import BypassCode, PendingApproval, PolicyEvaluation, PolicyRule, PolicySettings

    database.create_tables([PolicyRule, PolicySettings, BypassCode, PolicyEvaluation, PendingApproval, ItsmConnection])


def _security(migrator):
    import peewee
    from playhouse.migrate import migrate

    from app.security.models import AuthFailure

    database.create_tables([AuthFailure])
    account = models.Account._meta.table_name
    existing = {column.name for column in database.get_columns(account)}
    columns = [
        ("previous_password_hash", peewee.CharField(max_length=255, null=True)),
        ("previous_password_expires_at", peewee.DateTimeField(null=True)),
    ]
    migrate(*(migrator.add_column(account, name, field) for name, field in columns if name not in existing))


MIGRATIONS = [
    (1, "initial schema", _initial_schema),
    (2, "decisions and their delivery outbox", _decisions),
    (3, "audit log", _audit_log),
    (6, "validation policies, bypass codes and ITSM connections", _policies_and_itsm),
    (7, "sign-in throttling and a second webhook password", _security),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version():
    if not database.table_exists(models.SchemaVersion._meta.table_name):
        return 0
    newest = models.SchemaVersion.select().order_by(models.SchemaVersion.version.desc()).first()
    return newest.version if newest else 0


# Arbitrary constant naming the PostgreSQL advisory lock that serialises upgrades.
_UPGRADE_LOCK_KEY = 73_015_201


def upgrade():
    """Run every migration not yet applied, in one transaction; returns the descriptions run."""
    from playhouse.migrate import SchemaMigrator

    migrator = SchemaMigrator.from_database(database.obj)
    applied = []
    with write_transaction():
        # Two processes running `init` at once: the second waits here (the SQLite
        # write lock, or this advisory lock) and then finds the steps done.
        if not is_sqlite():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK_KEY,))
        database.create_tables([models.SchemaVersion])
        done = current_version()
        for version, description, step in MIGRATIONS:
            if version > done:
                step(migrator)
                models.SchemaVersion.create(version=version)
                applied.append(description)
    return applied
