"""The EPM access token every process and host of a deployment shares (see app/epm/tokens.py)."""
import peewee

from app.db import database
from app.secrets import EncryptedTextField


class EpmToken(peewee.Model):
    """One row per set of EPM credentials (keyed by a digest, so it names no secret): the encrypted token and its claim.

    `generation` counts the tokens stored, so a process only claims the fetch of a replacement for the token it saw."""

    key = peewee.CharField(max_length=64, primary_key=True)
    access_token = EncryptedTextField(null=True)
    fetched_at = peewee.DateTimeField(null=True)
    renew_at = peewee.DateTimeField(null=True)
    expires_at = peewee.DateTimeField(null=True)
    generation = peewee.IntegerField(default=0)
    holder = peewee.CharField(max_length=200, null=True)
    claimed_until = peewee.DateTimeField(null=True)

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_epm_token"
