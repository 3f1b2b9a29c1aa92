"""The broker's tables, named as BeyondTrust's ServiceNow app names them (contract/tickets.md).

ServiceNow keeps incidents, changes and catalog tasks in one `task` hierarchy told
apart by `sys_class_name`; the broker does the same, so lists and searches across
ticket types read one indexed table. The two JIT tables hold what EPM sent.
"""
import json
import uuid
import weakref
from datetime import datetime, timezone

import peewee
from flask_login import UserMixin

from app import contract, events
from app.db import database
from app.secrets import EncryptedTextField


# What EPM's unconfirmed `accessDecision.status` values mean (contract/epm.md §5.1): a setting, these its defaults.
DEFAULT_APPROVED_STATUSES = f"{contract.DECISION_APPROVED}, {contract.EPM_STATUS_APPROVED}"
DEFAULT_DENIED_STATUSES = f"{contract.DECISION_DENIED}, {contract.EPM_STATUS_DENIED}"


def utcnow():
    """The current UTC time, naive, as every timestamp column stores it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_sys_id():
    """A ServiceNow-style sys_id: 32 lowercase hex characters, never reused."""
    return uuid.uuid4().hex


class JSONField(peewee.TextField):
    """A JSON document stored as text, so both databases read it the same way."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    sys_id = peewee.CharField(max_length=32, unique=True, default=new_sys_id)

    class Meta:
        database = database


class QueuedWork(BaseModel):
    """The columns of a row that waits for work and is claimed for each attempt (app/claims.py):
    PENDING until `next_attempt_at`, WORKING while a process's claim runs (`claimed_until`)."""

    PENDING, WORKING = contract.DELIVERY_PENDING, contract.DELIVERY_SENDING

    status = peewee.CharField(max_length=16, default=PENDING)
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    claimed_until = peewee.DateTimeField(null=True)


class Account(BaseModel, UserMixin):  # UserMixin last: peewee's equality, hash and get_id stay
    """A broker account: an approver (`user`), an `admin`, or EPM's `api` machine identity."""

    username = peewee.CharField(max_length=150, unique=True)
    password_hash = peewee.CharField(max_length=255)
    role = peewee.CharField(max_length=16, choices=[(r, r) for r in contract.ROLES])
    active = peewee.BooleanField(default=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    # Where ticket notifications go, and which assignment groups (comma-separated) the
    # approver belongs to: see app/notify/recipients.py.
    email = peewee.CharField(max_length=254, default="")
    groups = peewee.CharField(max_length=1000, default="")
    # The password before the last change, still accepted over HTTP Basic until the
    # expiry, so EPM's credentials can be rotated without dropping a delivery.
    previous_password_hash = peewee.CharField(max_length=255, null=True)
    previous_password_expires_at = peewee.DateTimeField(null=True)
    # Moved by sign-out, a new password, a new role, deactivation or an admin's "End sessions":
    # a browser session opened at another epoch is over (app/auth/sessions.py).
    session_epoch = peewee.IntegerField(default=0)
    # Set when an admin sets the password (creation, reset): the person must choose their own (app/auth/steps.py).
    must_change_password = peewee.BooleanField(default=False)
    # Two-factor sign-in (app/auth/two_factor.py): the TOTP secret, encrypted like every stored secret; in use
    # once confirmed with a code (`totp_enabled_at`); the last time step a code was accepted for (no replays).
    totp_secret = EncryptedTextField(default="")
    totp_enabled_at = peewee.DateTimeField(null=True)
    totp_last_step = peewee.BigIntegerField(default=0)
    # An account that signs in through the OpenID Connect provider is the provider's (issuer, subject)
    # pair; its user name only names it. `idp_tokens` holds the tokens the broker re-checks the person's
    # groups with (JSON, encrypted), `idp_checked_at` when that last succeeded (app/auth/oidc_client.py).
    idp_issuer = peewee.CharField(max_length=255, null=True)
    idp_subject = peewee.CharField(max_length=255, null=True)
    idp_tokens = EncryptedTextField(null=True)
    idp_checked_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "sys_user"
        indexes = ((("idp_issuer", "idp_subject"), True),)

    @property
    def signs_in_with_provider(self):
        """True for an account the identity provider vouches for: it has no local password."""
        return self.idp_subject is not None

    def save(self, *args, **kwargs):
        saved = super().save(*args, **kwargs)
        events.account_changed.send(Account)
        return saved

    @classmethod
    def change(cls, account_id, **values):
        """Update one account's columns (and its updated_at) without reading it first."""
        cls.update(updated_at=utcnow(), **values).where(cls.id == account_id).execute()
        events.account_changed.send(Account)

    @classmethod
    def by_username(cls, username):
        return cls.get_or_none(cls.username == username)

    @property
    def is_active(self):
        return self.active


class Configuration(BaseModel):
    """Integration settings; the broker uses the record named `Default`."""

    name = peewee.CharField(max_length=100, unique=True)
    pmc_host = peewee.CharField(max_length=255, default="")
    tenant_id = peewee.CharField(max_length=100, default="")
    client_id = peewee.CharField(max_length=255, default="")
    client_secret = EncryptedTextField(default="")
    ticket_type = peewee.CharField(max_length=32, default=contract.DEFAULT_TICKET_TYPE)
    active_states = peewee.CharField(max_length=255, default=", ".join(contract.DEFAULT_ACTIVE_STATES))
    default_short_description = peewee.CharField(max_length=160, default="")
    default_assignment_group = peewee.CharField(max_length=100, default="")
    default_category = peewee.CharField(max_length=100, default="")
    auto_close = peewee.BooleanField(default=False)
    # EPM API paths the contract marks unconfirmed, kept editable (contract/epm.md §2–3).
    token_path = peewee.CharField(max_length=255, default=contract.EPM_TOKEN_PATH)
    application_decision_path = peewee.CharField(max_length=255, default=contract.EPM_APPLICATION_DECISION_PATH)
    admin_decision_path = peewee.CharField(max_length=255, default=contract.EPM_ADMIN_DECISION_PATH)
    admin_once_duration = peewee.CharField(max_length=32, default=contract.EPM_ADMIN_ONCE_DURATION)
    token_auth_method = peewee.CharField(max_length=32, default=contract.TOKEN_AUTH_POST)
    token_scope = peewee.CharField(max_length=255, default="")
    # Comma-separated accessDecision.status values read as approved and as denied (app/epm/records.py).
    epm_approved_statuses = peewee.CharField(max_length=255, default=DEFAULT_APPROVED_STATUSES)
    epm_denied_statuses = peewee.CharField(max_length=255, default=DEFAULT_DENIED_STATUSES)
    # Notifications (app/notify), SLA reminders, retention (app/jobs) and the log level switch.
    smtp_host = peewee.CharField(max_length=255, default="")
    smtp_port = peewee.IntegerField(default=587)
    smtp_username = peewee.CharField(max_length=255, default="")
    smtp_password = EncryptedTextField(default="")
    smtp_starttls = peewee.BooleanField(default=True)
    mail_from = peewee.CharField(max_length=254, default="")
    # A Slack or Teams incoming-webhook URL carries its own credential: stored encrypted, like the passwords.
    notify_webhook_url = EncryptedTextField(default="")
    sla_minutes = peewee.IntegerField(default=0)
    retention_incoming_days = peewee.IntegerField(default=90)
    retention_outbound_days = peewee.IntegerField(default=30)
    retention_closed_ticket_days = peewee.IntegerField(default=365)
    retention_app_log_days = peewee.IntegerField(default=30)
    debug_logging = peewee.BooleanField(default=False)
    # Small teams only: lets an approver approve a request EPM names them as the requester of (app/decisions).
    allow_self_approval = peewee.BooleanField(default=False)
    # An admin's mark that EPM or the mail server is on the organisation's own network: private addresses
    # are then allowed for it (app/egress.py); link-local and cloud metadata addresses never are.
    epm_internal = peewee.BooleanField(default=False)
    smtp_internal = peewee.BooleanField(default=False)
    # With sign-in through the identity provider: only admins may still use a local password (break-glass).
    local_sign_in_admins_only = peewee.BooleanField(default=False)
    updated_at = peewee.DateTimeField(default=utcnow)

    DEFAULT_NAME = "Default"

    class Meta:
        table_name = "x_bets_pmc_jit_configuration"

    @classmethod
    def default(cls):
        """The `Default` record, created with default values when missing."""
        record, _ = cls.get_or_create(name=cls.DEFAULT_NAME)
        return record

    @classmethod
    def as_of(cls, version):
        """The `Default` record at `version` (CONFIGURATION_VERSION, read by the caller in its transaction):
        this process's copy when it is that version, else read again and kept. Shared: never change it."""
        kept = _kept_configurations.get(database.obj)
        if kept is not None and version is not None and kept[0] == version:
            return kept[1]

        def read():
            return (cls.select(cls, peewee.SQL(f'"{CONFIGURATION_VERSION}"').alias("configuration_version"))
                    .where(cls.name == cls.DEFAULT_NAME).first())

        record = read()
        if record is None:  # created with its defaults, then read with the version the database gave it
            cls.default()
            record = read()
        _kept_configurations[database.obj] = (record.configuration_version, record)
        return record

    @classmethod
    def move_version(cls):
        """Move the version without changing a value (an UPDATE of the row is enough): for settings kept with
        it that live in other tables (whether any policy rule is enabled, app/policies/queue.py)."""
        cls.update(name=cls.name).where(cls.name == cls.DEFAULT_NAME).execute()

    @classmethod
    def last_kept(cls):
        """This process's copy of the `Default` record at the version it last saw, or None; read nothing.
        Good for work done before a transaction that then checks the version (`as_of`)."""
        kept = _kept_configurations.get(database.obj)
        return None if kept is None else kept[1]

    @property
    def active_state_labels(self):
        return [label.strip() for label in self.active_states.split(",") if label.strip()]


# A column of the configuration table the model does not declare, so no save writes it: the database
# moves it on every change of the row (a trigger, app/migrations.py step 27). A delivery reads it in
# its own transaction and reuses its process's copy of the record while it is unchanged, so a change
# made by any process on any host applies to the next delivery everywhere.
CONFIGURATION_VERSION = "version"
# The `Default` record each process read last, by database, with its version.
_kept_configurations = weakref.WeakKeyDictionary()


class NumberCounter(peewee.Model):
    """The next number per task table; rows are locked by the transaction that takes one."""

    table = peewee.CharField(max_length=32, primary_key=True)
    next_number = peewee.IntegerField()

    class Meta:
        database = database
        table_name = "sys_number"


class Task(BaseModel):
    """The ticket an approver works: an incident, change, catalog task or requested item.

    The columns an approver lists and searches by (requester, host, application) are
    copied here from the JIT record so the list is one indexed query.
    """

    sys_class_name = peewee.CharField(max_length=32)
    number = peewee.CharField(max_length=16, unique=True)
    state = peewee.IntegerField()
    short_description = peewee.CharField(max_length=160, default="")
    assignment_group = peewee.CharField(max_length=100, default="", index=True)
    category = peewee.CharField(max_length=100, default="")
    kind = peewee.CharField(max_length=16)
    request_id = peewee.CharField(max_length=100, index=True)
    requester = peewee.CharField(max_length=255, null=True)
    host = peewee.CharField(max_length=255, null=True)
    subject = peewee.CharField(max_length=255)
    publisher = peewee.CharField(max_length=255, null=True)
    # The request's reason and file hashes, one a line: searched with the columns above
    # (app/tickets/search.py) through the one search index, so search reads no other table.
    search_details = peewee.TextField(null=True)
    # The file hashes EPM sent (sha256Hash, sha1Hash), lower-cased: the ticket page finds earlier requests
    # for the same file through an index on each (migration 31, app/tickets/context.py).
    sha256_hash = peewee.CharField(max_length=128, null=True)
    sha1_hash = peewee.CharField(max_length=128, null=True)
    requested_duration = peewee.CharField(max_length=32, null=True)
    opened_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    closed_at = peewee.DateTimeField(null=True)
    # How many approvers must agree (2 when a policy says so); None while the ticket's policies
    # are queued or running, when nobody may approve. DEFAULT 1 for rows bulk-loaded with SQL.
    approvals_required = peewee.IntegerField(null=True, default=1, constraints=[peewee.SQL("DEFAULT 1")])
    # When the expiry job found the request still waiting for a decision past [tickets] expire_pending_hours
    # (app/jobs/expiry.py); no decision is taken on it after.
    expired_at = peewee.DateTimeField(null=True)
    # How the request ended (EPM's final word, else the broker's latest decision and its delivery), who decided
    # and when: kept by every write that changes them (app/tickets/outcome.py), so the ticket page lists earlier
    # requests from an index alone (app/tickets/context.py). DEFAULTs for rows bulk-loaded with SQL.
    outcome = peewee.CharField(max_length=64, default=contract.OUTCOME_AWAITING,
                               constraints=[peewee.SQL(f"DEFAULT '{contract.OUTCOME_AWAITING}'")])
    outcome_by = peewee.CharField(max_length=255, default="", constraints=[peewee.SQL("DEFAULT ''")])
    outcome_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "task"

    @property
    def ticket_type(self):
        return contract.TICKET_TYPES[self.sys_class_name]

    @property
    def state_label(self):
        return self.ticket_type.state_label(self.state)

    @property
    def jit_request(self):
        """The application-access or admin record behind this task."""
        model = ApplicationAccessTicket if self.kind == contract.KIND_APPLICATION else AdminTicket
        return model.get(model.task == self)


class JitRequest(BaseModel):
    """What EPM sent about one request, and EPM's finalized decision once it arrives."""

    task = peewee.ForeignKeyField(Task, unique=True, on_delete="CASCADE")
    request_id = peewee.CharField(max_length=100, unique=True)
    tenant_id = peewee.CharField(max_length=100, null=True)
    epm_ticket_number = peewee.CharField(max_length=100, null=True)
    requested_at = peewee.DateTimeField(null=True)
    reason = peewee.TextField(null=True)
    final_decision = peewee.CharField(max_length=32, null=True)
    final_decision_time = peewee.DateTimeField(null=True)
    final_decision_by = peewee.CharField(max_length=255, null=True)
    final_duration = peewee.CharField(max_length=32, null=True)
    final_start_time = peewee.DateTimeField(null=True)
    final_end_time = peewee.DateTimeField(null=True)
    decision_final = peewee.BooleanField(default=False)
    # What a later update made of the final decision (contract.EPM_OUTCOMES): Revoked, Ended early, Changed.
    epm_outcome = peewee.CharField(max_length=32, null=True)
    # The latest update that contradicted what EPM had acknowledged; the final_* columns keep the decision.
    conflict_decision = peewee.CharField(max_length=32, null=True)
    conflict_decision_time = peewee.DateTimeField(null=True)
    conflict_end_time = peewee.DateTimeField(null=True)
    conflict_by = peewee.CharField(max_length=255, null=True)
    conflict_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)
    # EPM's record of the request as last read from its API ("Check with EPM", reconciliation), and when;
    # read at with no record: EPM did not know the request.
    epm_record = JSONField(null=True)
    epm_checked_at = peewee.DateTimeField(null=True)


class ApplicationAccessTicket(JitRequest):
    """An Application Access request (URM); `request_info` holds every key EPM sent."""

    request_info = JSONField(default=dict)

    class Meta:
        table_name = "x_bets_pmc_jit_application_access_ticket"


class AdminTicket(JitRequest):
    """An Admin Access request."""

    computer_id = peewee.CharField(max_length=100, null=True)
    group_id = peewee.CharField(max_length=100, null=True)
    user_id = peewee.CharField(max_length=255, null=True)
    user_name = peewee.CharField(max_length=255, null=True)
    duration_requested = peewee.CharField(max_length=32, null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_admin_ticket"


JIT_MODELS = {contract.KIND_APPLICATION: ApplicationAccessTicket, contract.KIND_ADMIN: AdminTicket}


class WorkNote(BaseModel):
    """A line in a ticket's activity: an approver's note or one the system adds for an event."""

    # Found through the (task, created_at) index below, which serves the foreign key too (migration 38).
    task = peewee.ForeignKeyField(Task, backref="work_notes", on_delete="CASCADE", index=False)
    author = peewee.CharField(max_length=150)
    text = peewee.TextField()
    system = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "sys_journal_field"
        indexes = ((("task", "created_at"), False),)


class Decision(QueuedWork):
    """An approver's decision and its delivery to EPM: the outbox row.

    Written in the same transaction that checks the ticket may still be decided, so
    a decision is either recorded and queued for EPM, or not at all. `sys_id` is the
    idempotency key EPM receives with every attempt.
    """

    task = peewee.ForeignKeyField(Task, backref="decisions", on_delete="CASCADE")
    decision = peewee.CharField(max_length=16)
    reason = peewee.TextField()
    duration_unit = peewee.CharField(max_length=16, null=True)
    duration_value = peewee.IntegerField(null=True)
    duration_sent = peewee.CharField(max_length=32, null=True)
    decided_by = peewee.CharField(max_length=150)
    decided_at = peewee.DateTimeField(default=utcnow)
    ticket_url = peewee.CharField(max_length=500)
    last_status = peewee.IntegerField(null=True)
    last_error = peewee.TextField(null=True)
    delivered_at = peewee.DateTimeField(null=True)
    # The attempts EPM answered 409 without its record telling whether the decision was applied (a record lagging
    # EPM's answer, say): the bound on those counts them alone, so an outage's attempts before them take none of
    # the time the record is given to catch up (app/decisions/delivery.py).
    unresolved_conflicts = peewee.IntegerField(default=0)

    class Meta:
        table_name = "x_bets_pmc_jit_decision"
        indexes = ((("status", "next_attempt_at"), False),)

    @property
    def is_open(self):
        """Pending, sending or delivered: no other decision may be taken meanwhile."""
        return self.status != contract.DELIVERY_FAILED

    @classmethod
    def latest_of(cls, task, *columns):
        """A query of the latest decision taken on `task` (a Task or its id), with `columns` (all when none)."""
        return (cls.select(*columns).where(cls.task == task)
                .order_by(cls.decided_at.desc(), cls.id.desc()).limit(1))


class IncomingRequest(BaseModel):
    """One webhook delivery exactly as received, and what became of it."""

    event_type = peewee.CharField(max_length=64, null=True)
    request_id = peewee.CharField(max_length=100, null=True)
    status = peewee.CharField(max_length=16, default=contract.INCOMING_RECEIVED)
    error = peewee.TextField(null=True)
    raw_body = peewee.BlobField(null=True)
    content_type = peewee.CharField(max_length=255, null=True)
    headers = JSONField(default=dict)
    source_address = peewee.CharField(max_length=64, null=True)
    task = peewee.ForeignKeyField(Task, null=True, on_delete="SET NULL")
    received_at = peewee.DateTimeField(default=utcnow)
    processed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "x_bets_pmc_jit_incoming_request"
        indexes = ((("request_id", "event_type", "status"), False),)

    @property
    def body_text(self):
        return None if self.raw_body is None else bytes(self.raw_body).decode("utf-8", "replace")


class PurgedRequest(peewee.Model):
    """An EPM request whose closed ticket the retention purge deleted (app/jobs/retention.py), with the JIT record
    that knew its RequestId. Kept with no end: EPM lists its requests for longer (reconciliation) and may send a
    delivery again, and neither may open a second ticket for a request already handled here. It holds no
    personal data: the RequestId, the ticket's number and when it went."""

    request_id = peewee.CharField(max_length=100)
    kind = peewee.CharField(max_length=16)
    number = peewee.CharField(max_length=16, null=True)  # None: deleted before the purge kept this record
    purged_at = peewee.DateTimeField(null=True)

    class Meta:
        database = database
        table_name = "jitbroker_purged_request"
        primary_key = peewee.CompositeKey("request_id", "kind")

    @classmethod
    def find(cls, kind, request_id):
        return cls.get_or_none(cls.request_id == request_id, cls.kind == kind)


class SchemaVersion(peewee.Model):
    """Which migrations have run (see app/migrations.py)."""

    version = peewee.IntegerField(primary_key=True)
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "jitbroker_schema_version"
