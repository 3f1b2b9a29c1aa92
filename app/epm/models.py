"""The EPM access token every process and host of a deployment shares (see app/epm/tokens.py)."""
import peewee

from app.db import database
from app.secrets import EncryptedTextField


class EpmToken(peewee.Model):
    """One row per set of EPM credentials: the current access token and who is fetching the next.

    `key` is a digest of the tenant URL, token path, client ID and a digest of the
    client secret, so the row names no secret and new credentials get a row of their
    own. The token is stored encrypted. Times are UTC (naive); `generation` counts the
    tokens stored, so a process only claims the fetch of a replacement for the token
    it saw. A claim (`holder` until `claimed_until`) is a lease, not a database lock:
    nothing stays locked while the token request is on the wire, and a process that
    dies holding one is replaced once the claim runs out.
    """

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
