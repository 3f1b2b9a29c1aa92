"""The operations tables: every call the broker made to EPM, and the service's own log.

Both are append-only records for people (and the metrics) to read; nothing in the
broker's processing depends on them. Column names are read by other modules
(metrics, retention): keep them.
"""
import peewee

from app.models import BaseModel, Decision, utcnow


class OutboundCall(BaseModel):
    """One HTTP attempt to EPM (token or API), as the EPM client reported it, secrets masked."""

    method = peewee.CharField(max_length=8)
    url = peewee.TextField()
    path = peewee.CharField(max_length=500)
    status = peewee.IntegerField(null=True)  # None when no answer came (time-out, refused connection)
    duration_ms = peewee.FloatField()
    attempt = peewee.IntegerField()
    what = peewee.CharField(max_length=64)  # "token", "application decision", "admin decision", ...
    request_body = peewee.TextField(null=True)
    response_body = peewee.TextField(null=True)
    error = peewee.TextField(null=True)
    # x-correlation-id sent on a decision call and answered by EPM, for a support case to quote (§5.7).
    correlation_id = peewee.CharField(max_length=128, null=True)
    answered_correlation_id = peewee.CharField(max_length=128, null=True)
    decision = peewee.ForeignKeyField(Decision, null=True, backref="outbound_calls", on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow, index=True)

    class Meta:
        table_name = "x_bets_pmc_jit_outbound_call"

    @property
    def succeeded(self):
        return self.status is not None and 200 <= self.status < 300 and not self.error


class AppLog(BaseModel):
    """One of the service's own log records, kept so admins can read it in the browser.

    WARNING and above always; INFO and above while the configuration's debug switch is on.
    """

    created_at = peewee.DateTimeField(default=utcnow, index=True)
    level = peewee.CharField(max_length=16)
    level_number = peewee.IntegerField()
    logger = peewee.CharField(max_length=255)
    message = peewee.TextField()
    request_id = peewee.CharField(max_length=128, null=True)
    ticket = peewee.CharField(max_length=32, null=True)
    exception = peewee.TextField(null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_app_log"
