"""External ITSM connections the policy engine validates ticket references against."""
import peewee

from app.models import BaseModel, JSONField, utcnow
from app.secrets import EncryptedTextField


class ItsmConnection(BaseModel):
    """One ITSM instance: its kind, address, sign-in and options; its secrets are stored encrypted and never shown."""

    name = peewee.CharField(max_length=64, unique=True)
    kind = peewee.CharField(max_length=32)
    enabled = peewee.BooleanField(default=True)
    base_url = peewee.CharField(max_length=500, default="")
    auth_method = peewee.CharField(max_length=32, default="")
    username = peewee.CharField(max_length=255, default="")
    secret = EncryptedTextField(default="")
    client_id = peewee.CharField(max_length=255, default="")
    client_secret = EncryptedTextField(default="")
    refresh_token = EncryptedTextField(default="")
    token_url = peewee.CharField(max_length=500, default="")
    options = JSONField(default=dict)
    timeout_seconds = peewee.IntegerField(default=10)
    last_validated_at = peewee.DateTimeField(null=True)
    last_validation = peewee.TextField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    SECRET_FIELDS = ("secret", "client_secret", "refresh_token")

    class Meta:
        table_name = "x_bets_pmc_jit_itsm_connection"

    def option(self, name, default=""):
        value = (self.options or {}).get(name)
        return default if value in (None, "") else value
