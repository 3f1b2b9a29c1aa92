"""The tables of authentication: failed attempts (throttling), recovery codes (two-factor sign-in)."""
import peewee

from app.db import database
from app.models import Account, utcnow


class AuthFailure(peewee.Model):
    """A failed sign-in (`sign_in`) or failed HTTP Basic check (`basic`), kept for a day."""

    kind = peewee.CharField(max_length=16)
    username = peewee.CharField(max_length=150, null=True)
    source_address = peewee.CharField(max_length=64, null=True)
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        database = database
        table_name = "jitbroker_auth_failure"
        indexes = (
            (("username", "kind", "created_at"), False),
            (("source_address", "created_at"), False),
        )


class RecoveryCode(peewee.Model):
    """One of an account's single-use recovery codes, stored as a SHA-256 digest (the code is random and long)."""

    account = peewee.ForeignKeyField(Account, on_delete="CASCADE", index=True)
    code_digest = peewee.CharField(max_length=64)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "jitbroker_recovery_code"
