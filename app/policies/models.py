"""The policy tables: ordered rules, their settings, bypass codes and evaluations (only app/policies writes them)."""
import peewee

from app.models import BaseModel, JSONField, QueuedWork, Task, utcnow

# What a matching rule does (see app/policies/engine.py for the order of evaluation).
OUTCOME_REQUIRE_TICKET = "require_ticket"
OUTCOME_AUTO_APPROVE = "auto_approve"
OUTCOME_AUTO_DENY = "auto_deny"
OUTCOME_TWO_APPROVERS = "two_approvers"
OUTCOME_EXEMPT = "exempt"
OUTCOME_LABELS = {
    OUTCOME_REQUIRE_TICKET: "Require a ticket reference",
    OUTCOME_AUTO_APPROVE: "Approve automatically when the referenced ticket is valid",
    OUTCOME_AUTO_DENY: "Deny automatically",
    OUTCOME_TWO_APPROVERS: "Require two approvers",
    OUTCOME_EXEMPT: "Exempt: leave to approvers, skip later rules",
}

# The checks an auto-approve rule makes on the referenced ticket, in the order they run.
CHECKS = ("exists", "state", "approved", "window", "requester")
CHECK_LABELS = {
    "exists": "the ticket exists",
    "state": "its state is allowed",
    "approved": "it is approved",
    "window": "its planned window covers now",
    "requester": "its requester is the JIT requester",
}

PATTERN_SERVICENOW = "servicenow"
PATTERN_REGEX = "regex"

SOURCE_ANY = "any"
SOURCE_BROKER = "broker"

DEFAULT_ALLOWED_STATES = "Scheduled, Implement, In Progress, Work in Progress"
DEFAULT_MAX_DURATION_MINUTES = 60

EVALUATION_PENDING = QueuedWork.PENDING
EVALUATION_RUNNING = "running"
EVALUATION_DONE = "done"
EVALUATION_ERROR = "error"
# Skipped while its ticket took no decision for a while (inactive, a decision on its way to EPM): queued again when
# the ticket takes one (app/policies/queue.py), and until then nobody approves (Task.approvals_required is None).
EVALUATION_WAITING = "waiting"


class PolicyRule(BaseModel):
    """One rule: which requests it matches (case-insensitive globs, every matcher optional) and what it does."""

    position = peewee.IntegerField(index=True)
    name = peewee.CharField(max_length=100)
    enabled = peewee.BooleanField(default=True)
    dry_run = peewee.BooleanField(default=False)
    kind = peewee.CharField(max_length=16, default="")
    computer_group = peewee.CharField(max_length=255, default="")
    group_id = peewee.CharField(max_length=255, default="")
    application_group = peewee.CharField(max_length=255, default="")
    publisher = peewee.CharField(max_length=255, default="")
    workstyle = peewee.CharField(max_length=255, default="")
    user = peewee.CharField(max_length=255, default="")
    outcome = peewee.CharField(max_length=32)
    reference_pattern = peewee.CharField(max_length=16, default=PATTERN_SERVICENOW)
    custom_regex = peewee.TextField(default="")
    ticket_source = peewee.CharField(max_length=64, default=SOURCE_ANY)
    check_exists = peewee.BooleanField(default=True)
    check_state = peewee.BooleanField(default=True)
    check_approved = peewee.BooleanField(default=True)
    check_window = peewee.BooleanField(default=True)
    check_requester = peewee.BooleanField(default=True)
    allowed_states = peewee.CharField(max_length=500, default=DEFAULT_ALLOWED_STATES)
    max_duration_minutes = peewee.IntegerField(default=DEFAULT_MAX_DURATION_MINUTES)
    deny_reason = peewee.TextField(default="")
    deny_on_failure = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "x_bets_pmc_jit_policy_rule"

    @classmethod
    def ordered(cls):
        return cls.select().order_by(cls.position, cls.id)

    def checks_enabled(self):
        return [check for check in CHECKS if getattr(self, f"check_{check}")]

    @property
    def allowed_state_labels(self):
        return [label.strip() for label in self.allowed_states.split(",") if label.strip()]


class PolicySettings(BaseModel):
    """Settings for all rules: global dry run, exempt requesters, the system identity's name."""

    name = peewee.CharField(max_length=100, unique=True)
    dry_run = peewee.BooleanField(default=False)
    # One glob per line or comma: EPM user names the rules never touch.
    exempt_users = peewee.TextField(default="")
    system_account = peewee.CharField(max_length=150, default="policy-engine")
    updated_at = peewee.DateTimeField(default=utcnow)

    DEFAULT_NAME = "Default"

    class Meta:
        table_name = "x_bets_pmc_jit_policy_settings"

    @classmethod
    def current(cls):
        record, _ = cls.get_or_create(name=cls.DEFAULT_NAME)
        return record

    @property
    def exempt_patterns(self):
        parts = self.exempt_users.replace("\n", ",").split(",")
        return [part.strip() for part in parts if part.strip()]


class BypassCode(BaseModel):
    """A failsafe code an admin issues, counting as a valid ticket; only its SHA-256 is stored."""

    code_hash = peewee.CharField(max_length=64, unique=True)
    hint = peewee.CharField(max_length=8)
    label = peewee.CharField(max_length=255, default="")
    single_use = peewee.BooleanField(default=True)
    expires_at = peewee.DateTimeField(null=True)
    issued_by = peewee.CharField(max_length=150)
    issued_at = peewee.DateTimeField(default=utcnow)
    used_count = peewee.IntegerField(default=0)
    last_used_at = peewee.DateTimeField(null=True)
    last_used_on = peewee.CharField(max_length=16, null=True)
    revoked_at = peewee.DateTimeField(null=True)
    revoked_by = peewee.CharField(max_length=150, null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_bypass_code"


class PolicyEvaluation(QueuedWork):
    """The queued, then finished, evaluation of one ticket (it sets Task.approvals_required)."""

    WORKING = EVALUATION_RUNNING

    task = peewee.ForeignKeyField(Task, unique=True, on_delete="CASCADE")
    ticket_url = peewee.CharField(max_length=500, default="")
    queued_at = peewee.DateTimeField(default=utcnow)
    finished_at = peewee.DateTimeField(null=True)
    outcome = peewee.TextField(default="")
    steps = JSONField(default=list)
    error = peewee.TextField(null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_policy_evaluation"
        indexes = ((("status", "queued_at"), False),)
