"""The first of two approvals, kept until a second approver agrees (app/decisions/approvals.py)."""
import peewee

from app.models import BaseModel, Task, utcnow

APPROVAL_PENDING = "pending"  # waiting for a second approver
APPROVAL_USED = "used"        # the second approval took it to EPM
APPROVAL_VOID = "void"        # the ticket was decided otherwise, or expired: it counts for nothing any more


class PendingApproval(BaseModel):
    """The first of two approvals a rule requires: kept until a second, different approver agrees."""

    task = peewee.ForeignKeyField(Task, on_delete="CASCADE", index=False)  # the (task, status) index leads with it
    approver = peewee.CharField(max_length=150)
    reason = peewee.TextField()
    duration_unit = peewee.CharField(max_length=16, null=True)
    duration_value = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=16, default=APPROVAL_PENDING)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "x_bets_pmc_jit_pending_approval"
        indexes = ((("task", "status"), False),)
