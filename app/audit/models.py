"""The audit log table: one row per recorded action, each carrying the hash of the one before."""
import peewee

from app.models import BaseModel, JSONField, utcnow


class AuditEntry(BaseModel):
    """One recorded action: when (UTC), who, from which address, on what, and the details.

    Rows are only ever inserted. `entry_hash` is the HMAC-SHA256, under the key `key_id` names, of
    the entry's fields and `previous_hash` (a plain SHA-256 for entries made before keying, whose
    `key_id` is null), so editing or deleting a row breaks the chain (app/audit/chain.py).
    """

    created_at = peewee.DateTimeField(default=utcnow, index=True)
    actor = peewee.CharField(max_length=150, index=True)
    action = peewee.CharField(max_length=64, index=True)
    object_type = peewee.CharField(max_length=64)
    object_id = peewee.CharField(max_length=255)
    source_address = peewee.CharField(max_length=64, null=True)
    detail = JSONField(default=dict)
    previous_hash = peewee.CharField(max_length=64)
    key_id = peewee.CharField(max_length=16, null=True)
    entry_hash = peewee.CharField(max_length=64, unique=True)

    class Meta:
        table_name = "x_bets_pmc_jit_audit_log"
