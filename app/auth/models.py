"""The tables of authentication: failed attempts (throttling), recovery codes (two-factor sign-in), and the
record of each browser session."""
from datetime import timedelta

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


class BrowserSession(peewee.Model):
    """A signed-in browser session, kept on the server: the signed cookie holds only an opaque id, of which
    this row keeps a digest. Deleting the row ends the session (an admin's "End"); moving the account's
    epoch ends all of them ("End all", sign-out, a new password or role), `epoch` says at which it began."""

    key_digest = peewee.CharField(max_length=64, unique=True)
    account = peewee.ForeignKeyField(Account, on_delete="CASCADE", index=True)
    epoch = peewee.IntegerField()
    created_at = peewee.DateTimeField(default=utcnow)
    last_seen_at = peewee.DateTimeField(default=utcnow)
    source_address = peewee.CharField(max_length=64, default="")
    user_agent = peewee.CharField(max_length=255, default="")

    class Meta:
        database = database
        table_name = "jitbroker_browser_session"

    @classmethod
    def live(cls, settings):
        """The sessions that may still be in use: of an active account, within its epoch and both time limits of
        `settings` (the last use is noted at most every 30 s, hence the margin on the idle one)."""
        now = utcnow()
        return cls.select(cls, Account).join(Account).where(
            cls.epoch == Account.session_epoch, Account.active == True,  # noqa: E712 (SQL)
            cls.created_at > now - timedelta(hours=settings.session_max_hours),
            cls.last_seen_at > now - timedelta(minutes=settings.session_idle_minutes, seconds=30))

    @classmethod
    def still_named(cls, settings):
        """The sessions a browser's cookie may still name: the live ones, and those that only timed out (idle, or
        past the absolute limit), whose tab's Sign out must still find them (app/auth/sessions.py). Not those ended
        with their account's epoch or its deactivation, nor those opened before `named_since(settings)`."""
        return cls.select(cls, Account).join(Account).where(
            cls.epoch == Account.session_epoch, Account.active == True,  # noqa: E712 (SQL)
            cls.created_at > cls.named_since(settings))

    @staticmethod
    def named_since(settings):
        """The oldest sign-in a cookie presented now can be of: the signed cookie is accepted up to the absolute
        limit after it was last written, and a session writes it only within its own absolute limit, so twice
        that limit ago."""
        return utcnow() - timedelta(hours=2 * settings.session_max_hours)
