"""The table behind sign-in throttling: one row per failed authentication, shared by every worker."""
import peewee

from app.db import database
from app.models import utcnow


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
