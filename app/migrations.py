"""Schema creation and upgrades: an ordered list of steps, each run once per database.

A released step is never edited: a change is a new step appended to MIGRATIONS."""
import copy

import peewee
from playhouse.migrate import migrate

from app import contract, models, secrets
from app.db import database, is_sqlite, write_transaction


def _columns(table):
    return {column.name for column in database.get_columns(table)}


def _add_columns(migrator, *columns):
    """Add each (table, name, field) its table lacks: step 1 creates tables from the current models,
    so a new database has them already."""
    existing = {table: _columns(table) for table, _name, _field in columns}
    missing = [(table, name, field) for table, name, field in columns if name not in existing[table]]
    if is_sqlite():
        # peewee adds a NOT NULL column as NULL and then rebuilds an SQLite table to forbid NULL, and the
        # rebuild drops the table's triggers (the configuration version, the ticket search index).
        missing = [(table, name, _not_null_with_its_default(field)) for table, name, field in missing]
    migrate(*(migrator.add_column(table, name, field) for table, name, field in missing))


def _not_null_with_its_default(field):
    """`field` as a column SQLite adds NOT NULL with its constant default in one ALTER TABLE, when it has one."""
    if field.null or field.default is None or callable(field.default):
        return field
    value = field.db_value(field.default)
    if isinstance(value, (bool, int)):
        literal = str(int(value))
    elif isinstance(value, str):
        literal = "'" + value.replace("'", "''") + "'"
    else:
        return field
    column = copy.copy(field)
    column.null = True  # peewee then adds it in one statement; the constraint makes it NOT NULL
    column.constraints = [peewee.SQL(f"NOT NULL DEFAULT {literal}")]
    return column


def _initial_schema(_migrator):
    database.create_tables([
        models.Account, models.Configuration, models.NumberCounter, models.Task,
        models.ApplicationAccessTicket, models.AdminTicket, models.WorkNote, models.IncomingRequest,
    ])
    database.execute_sql("CREATE INDEX task_newest ON task (opened_at DESC, id DESC)")


def _decisions(_migrator):
    database.create_tables([models.Decision])


def _audit_log(_migrator):
    from app.audit.models import AuditEntry

    database.create_tables([AuditEntry])


def _operations_logs(_migrator):
    from app.logs.models import AppLog, OutboundCall

    database.create_tables([OutboundCall, AppLog])


def _policies_and_itsm(_migrator):
    from app.itsm.models import ItsmConnection
    from app.decisions.models import PendingApproval
    from app.policies.models import BypassCode, PolicyEvaluation, PolicyRule, PolicySettings

    database.create_tables([PolicyRule, PolicySettings, BypassCode, PolicyEvaluation, PendingApproval, ItsmConnection])


def encrypt_stored(table, columns):
    """Encrypt the plaintext values left in `columns` of `table`."""
    for column in columns:
        rows = database.execute_sql(f'SELECT id, "{column}" FROM "{table}"').fetchall()
        for row_id, value in rows:
            if value and not value.startswith(secrets.PREFIX):
                database.execute_sql(f'UPDATE "{table}" SET "{column}" = {database.param} WHERE id = {database.param}',
                                     (secrets.encrypt(value), row_id))


def _security(migrator):
    from app.auth.models import AuthFailure

    database.create_tables([AuthFailure])
    account = models.Account._meta.table_name
    _add_columns(migrator, (account, "previous_password_hash", peewee.CharField(max_length=255, null=True)),
                 (account, "previous_password_expires_at", peewee.DateTimeField(null=True)))
    # Secrets saved before encryption existed are encrypted in place.
    configuration = models.Configuration._meta.table_name
    encrypt_stored(configuration, [name for name in ("client_secret", "smtp_password")
                                   if name in _columns(configuration)])


def _scheduler_notifications_retention(migrator):
    from app.jobs.models import SchedulerLease
    from app.notify.models import Notification

    # This step also made a per-job lock table, which step 14 replaces (and drops).
    database.create_tables([SchedulerLease, Notification])
    # Field definitions are spelled out here, not taken from the models, so this step
    # does the same thing however the models change later.
    account, configuration = models.Account._meta.table_name, models.Configuration._meta.table_name
    _add_columns(
        migrator,
        (account, "email", peewee.CharField(max_length=254, default="")),
        (account, "groups", peewee.CharField(max_length=1000, default="")),
        (configuration, "smtp_host", peewee.CharField(max_length=255, default="")),
        (configuration, "smtp_port", peewee.IntegerField(default=587)),
        (configuration, "smtp_username", peewee.CharField(max_length=255, default="")),
        (configuration, "smtp_password", peewee.TextField(default="")),
        (configuration, "smtp_starttls", peewee.BooleanField(default=True)),
        (configuration, "mail_from", peewee.CharField(max_length=254, default="")),
        (configuration, "notify_webhook_url", peewee.TextField(default="")),
        (configuration, "sla_minutes", peewee.IntegerField(default=0)),
        (configuration, "retention_incoming_days", peewee.IntegerField(default=90)),
        (configuration, "retention_outbound_days", peewee.IntegerField(default=30)),
        (configuration, "retention_closed_ticket_days", peewee.IntegerField(default=365)),
        (configuration, "debug_logging", peewee.BooleanField(default=False)),
    )


def _ticket_search_index(_migrator):
    """Free-text search without reading every ticket (app/tickets/search.py queries these)."""
    columns = "number, requester, host, subject, publisher"
    if is_sqlite():
        new_values = "new.number, new.requester, new.host, new.subject, new.publisher"
        old_values = "old.number, old.requester, old.host, old.subject, old.publisher"
        database.execute_sql(f"CREATE VIRTUAL TABLE task_search USING fts5({columns}, content='task', "
                             "content_rowid='id', tokenize='trigram')")
        database.execute_sql("INSERT INTO task_search (task_search) VALUES ('rebuild')")
        database.execute_sql(f"CREATE TRIGGER task_search_insert AFTER INSERT ON task BEGIN "
                             f"INSERT INTO task_search (rowid, {columns}) VALUES (new.id, {new_values}); END")
        database.execute_sql(f"CREATE TRIGGER task_search_delete AFTER DELETE ON task BEGIN "
                             f"INSERT INTO task_search (task_search, rowid, {columns}) "
                             f"VALUES ('delete', old.id, {old_values}); END")
        database.execute_sql(f"CREATE TRIGGER task_search_update AFTER UPDATE OF {columns} ON task BEGIN "
                             f"INSERT INTO task_search (task_search, rowid, {columns}) "
                             f"VALUES ('delete', old.id, {old_values}); "
                             f"INSERT INTO task_search (rowid, {columns}) VALUES (new.id, {new_values}); END")
        return
    database.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    database.execute_sql(
        "CREATE INDEX task_search_trgm ON task USING gin ((coalesce(number, '') || ' ' || coalesce(requester, '') "
        "|| ' ' || coalesce(host, '') || ' ' || coalesce(subject, '') || ' ' || coalesce(publisher, '')) "
        "gin_trgm_ops)")


def _analyze_tickets():
    """PostgreSQL: gather the ticket table's statistics for a new index, when there are tickets to read.

    An empty table analyzed reads as one that stays empty, where one never analyzed reads as at least ten
    pages: the plan of each foreign-key check, made once per connection and kept, would scan every ticket
    of a new installation until autovacuum analyzed the table again."""
    if models.Task.select().exists():
        database.execute_sql("ANALYZE task")


def _app_log_retention(migrator):
    _add_columns(migrator, (models.Configuration._meta.table_name, "retention_app_log_days",
                            peewee.IntegerField(default=30)))


def _shared_epm_token(_migrator):
    from app.epm.models import EpmToken

    database.create_tables([EpmToken])


def _search_statistics(_migrator):
    """PostgreSQL: estimate a search text's matches from a larger sample (app/tickets/search.py)."""
    if not is_sqlite():
        from app.tickets import search

        search.keep_search_statistics()
        _analyze_tickets()


class _QueuedDelivery(peewee.Model):
    """The table queued intake's webhook stored deliveries in, until its processor took them in."""

    sys_id = peewee.CharField(max_length=32)
    event_type = peewee.CharField(max_length=64)
    request_id = peewee.CharField(max_length=100)
    raw_body = peewee.BlobField()
    content_type = peewee.CharField(max_length=255, null=True)
    headers = models.JSONField(default=dict)
    source_address = peewee.CharField(max_length=64, null=True)
    received_at = peewee.DateTimeField()

    class Meta:
        database = database
        table_name = "x_bets_pmc_jit_queued_delivery"


def _apply_queued_deliveries(migrator):
    """Deliveries queued intake (steps 11 and 13, retired) stored and no processor applied become tickets,
    oldest first, keeping the sys_id EPM's answer named; its table and `queued` column go."""
    from app.intake.service import apply_stored

    incoming = models.IncomingRequest
    table = incoming._meta.table_name
    if "queued" not in _columns(table):
        return
    left = [row_id for (row_id,) in incoming.select(incoming.id).where(peewee.Entity("queued") == True)  # noqa: E712
            .order_by(incoming.id).tuples()]
    for index in database.get_indexes(table):
        if "queued" in index.columns:
            database.execute_sql(f'DROP INDEX "{index.name}"')
    migrate(migrator.drop_column(table, "queued"))
    if database.table_exists(_QueuedDelivery._meta.table_name):
        for row in _QueuedDelivery.select().order_by(_QueuedDelivery.id):
            kept = {name: getattr(row, name) for name in _QueuedDelivery._meta.fields if name != "id"}
            left.append(incoming.create(**kept, status=contract.INCOMING_RECEIVED).id)
        database.drop_tables([_QueuedDelivery])
    rows = [incoming.get_by_id(row_id) for row_id in left]
    # Updates first: queued intake had checked no more than their event type and RequestId, and
    # one found invalid while its created event applied it would fail that event too. Applied
    # first, an invalid update becomes an error row, and a valid one waits for its created event.
    rows.sort(key=lambda row: (getattr(contract.find_event_type(row.event_type), "is_created", True), row.id))
    for row in rows:
        row = incoming.get_by_id(row.id)
        if row.status != contract.INCOMING_RECEIVED:
            continue  # an update its created event, applied before it, applied too
        apply_stored(row)  # a new ticket meets the policies through `ticket_created`


def _one_scheduler_lease(migrator):
    """Jobs run under the scheduler lease alone: each job's lock row becomes its last-run record,
    and policy evaluations get the due time every claimed row has (app/claims.py)."""
    from app.jobs.models import JobRun
    from app.policies.models import PolicyEvaluation

    database.create_tables([JobRun])
    if database.table_exists("x_bets_pmc_jit_job_lock"):
        columns = "name, last_started_at, last_finished_at, last_result, last_error, runs"
        database.execute_sql(f"INSERT INTO {JobRun._meta.table_name} ({columns}) "
                             f"SELECT {columns} FROM x_bets_pmc_jit_job_lock")
        database.execute_sql("DROP TABLE x_bets_pmc_jit_job_lock")
    _add_columns(migrator, (PolicyEvaluation._meta.table_name, "next_attempt_at",
                            peewee.DateTimeField(default=models.utcnow)))


def _approvals_on_the_ticket(migrator):
    """How many approvers a ticket needs moves from its policy evaluation to Task.approvals_required:
    the evaluation's number once it has run, None while it is queued or running, 1 without one."""
    task, evaluation = models.Task._meta.table_name, "x_bets_pmc_jit_policy_evaluation"
    _add_columns(migrator, (task, "approvals_required", peewee.IntegerField(
        null=True, default=1, constraints=[peewee.SQL("DEFAULT 1")])))
    if "required_approvals" in _columns(evaluation):
        database.execute_sql(
            f"UPDATE {task} SET approvals_required = (SELECT CASE WHEN e.status IN ('pending', 'running') "
            f"THEN NULL ELSE e.required_approvals END FROM {evaluation} e WHERE e.task_id = {task}.id) "
            f"WHERE id IN (SELECT task_id FROM {evaluation})")
        migrate(migrator.drop_column(evaluation, "required_approvals"))


def _token_request_and_correlation(migrator):
    """The token request's authentication and scope (contract/epm.md §5.6); EPM calls' correlation ids (§5.7)."""
    from app.logs.models import OutboundCall

    configuration, call = models.Configuration._meta.table_name, OutboundCall._meta.table_name
    _add_columns(migrator, (configuration, "token_auth_method", peewee.CharField(
                     max_length=32, default=contract.TOKEN_AUTH_POST)),
                 (configuration, "token_scope", peewee.CharField(max_length=255, default="")),
                 (call, "correlation_id", peewee.CharField(max_length=128, null=True)),
                 (call, "answered_correlation_id", peewee.CharField(max_length=128, null=True)))


def _epm_outcome_and_conflict(migrator):
    """An update after EPM's final decision: the outcome it made (revoked, ended early) and a conflicting one
    (contract/epm.md 5.3)."""
    columns = (("epm_outcome", peewee.CharField(max_length=32, null=True)),
               ("conflict_decision", peewee.CharField(max_length=32, null=True)),
               ("conflict_decision_time", peewee.DateTimeField(null=True)),
               ("conflict_end_time", peewee.DateTimeField(null=True)),
               ("conflict_by", peewee.CharField(max_length=255, null=True)),
               ("conflict_at", peewee.DateTimeField(null=True)))
    _add_columns(migrator, *((model._meta.table_name, name, field) for model in models.JIT_MODELS.values()
                             for name, field in columns))


def _epm_records(migrator):
    """What EPM's record statuses mean (contract/epm.md §5.1), and EPM's record of each request as last read."""
    configuration = models.Configuration._meta.table_name
    columns = [(configuration, "epm_approved_statuses", peewee.CharField(max_length=255, default="Approved, 2000")),
               (configuration, "epm_denied_statuses", peewee.CharField(max_length=255, default="Denied, 2001"))]
    for model in (models.ApplicationAccessTicket, models.AdminTicket):
        columns += [(model._meta.table_name, "epm_record", models.JSONField(null=True)),
                    (model._meta.table_name, "epm_checked_at", peewee.DateTimeField(null=True))]
    _add_columns(migrator, *columns)


def _pending_expiry(migrator):
    """When a request left undecided too long was marked expired (app/jobs/expiry.py)."""
    _add_columns(migrator, (models.Task._meta.table_name, "expired_at", peewee.DateTimeField(null=True)))


def _self_approval_setting(migrator):
    """Whether an approver may approve their own request (off: refused, app/decisions/service.py)."""
    _add_columns(migrator, (models.Configuration._meta.table_name, "allow_self_approval",
                            peewee.BooleanField(default=False)))


def _session_epoch(migrator):
    """The account's session epoch: moving it ends every browser session of the account (app/auth/sessions.py)."""
    _add_columns(migrator, (models.Account._meta.table_name, "session_epoch", peewee.IntegerField(default=0)))


def _keyed_audit_chain(migrator):
    """Audit entries are signed with a key kept outside the database and name it (app/audit/keys.py); the
    entries from before stay one legacy segment, closed by a signed entry that records its head."""
    from app.audit.models import AuditEntry
    from app.audit.service import close_legacy_segment

    _add_columns(migrator, (AuditEntry._meta.table_name, "key_id", peewee.CharField(max_length=16, null=True)))
    close_legacy_segment()


def _internal_marks(migrator):
    """Marks allowing a private-network address for EPM and for the mail server (app/egress.py)."""
    table = models.Configuration._meta.table_name
    _add_columns(migrator, (table, "epm_internal", peewee.BooleanField(default=False)),
                 (table, "smtp_internal", peewee.BooleanField(default=False)))


def _chat(_migrator):
    """Slack and Teams (app/chat): the chat outbox, Slack signatures seen (replay protection) and linked users."""
    from app.chat.models import ChatPost, SlackLink, SlackSignature

    database.create_tables([ChatPost, SlackSignature, SlackLink])


def _accounts(migrator):
    """Accounts as ASVS L2 expects: an admin-set password must be changed (app/auth/steps.py), two-factor
    sign-in with recovery codes (app/auth/two_factor.py), a server-side record of each browser session
    (app/auth/sessions.py)."""
    from app.auth.models import BrowserSession, RecoveryCode

    table = models.Account._meta.table_name
    _add_columns(migrator, (table, "must_change_password", peewee.BooleanField(default=False)),
                 (table, "totp_secret", secrets.EncryptedTextField(default="")),
                 (table, "totp_enabled_at", peewee.DateTimeField(null=True)),
                 (table, "totp_last_step", peewee.BigIntegerField(default=0)))
    database.create_tables([RecoveryCode, BrowserSession])


def _identity_provider_accounts(migrator):
    """Accounts keyed on the OpenID provider's (issuer, subject), their re-check tokens, and the switch keeping
    local sign-in for admins only (app/auth/oidc.py)."""
    account = models.Account._meta.table_name
    _add_columns(migrator, (account, "idp_issuer", peewee.CharField(max_length=255, null=True)),
                 (account, "idp_subject", peewee.CharField(max_length=255, null=True)),
                 (account, "idp_tokens", peewee.TextField(null=True)),
                 (account, "idp_checked_at", peewee.DateTimeField(null=True)),
                 (models.Configuration._meta.table_name, "local_sign_in_admins_only",
                  peewee.BooleanField(default=False)))
    if not any(index.columns == ["idp_issuer", "idp_subject"] for index in database.get_indexes(account)):
        migrate(migrator.add_index(account, ("idp_issuer", "idp_subject"), True))


def _configuration_version(migrator):
    """A version on the configuration record that the database moves on every change of the row, however
    made (the admin page, the CLI, SQL), so each process can keep the record and check it with one value."""
    table = models.Configuration._meta.table_name
    column = models.CONFIGURATION_VERSION
    _add_columns(migrator, (table, column, peewee.BigIntegerField(
        default=1, constraints=[peewee.SQL("DEFAULT 1")])))
    if is_sqlite():
        # SQLite's triggers cannot change NEW: the row is updated again, which fires no trigger
        # (recursive_triggers is off) and would not pass the WHEN if it did.
        database.execute_sql(f'CREATE TRIGGER IF NOT EXISTS configuration_version AFTER UPDATE ON "{table}" '
                             f'WHEN NEW."{column}" IS OLD."{column}" BEGIN '
                             f'UPDATE "{table}" SET "{column}" = OLD."{column}" + 1 WHERE id = NEW.id; END')
        return
    database.execute_sql(f'CREATE OR REPLACE FUNCTION configuration_version() RETURNS trigger LANGUAGE plpgsql AS '
                         f'$$ BEGIN NEW."{column}" := OLD."{column}" + 1; RETURN NEW; END $$')
    database.execute_sql(f'DROP TRIGGER IF EXISTS configuration_version ON "{table}"')
    database.execute_sql(f'CREATE TRIGGER configuration_version BEFORE UPDATE ON "{table}" '
                         'FOR EACH ROW EXECUTE FUNCTION configuration_version()')


# Migration 28's search document: the searched columns one a line, so a text of one line
# matches within one of them. app/tickets/search.py spells it the same way (the PostgreSQL
# planner uses an expression index only for the same expression).
_SEARCHED = ("number", "short_description", "requester", "host", "subject", "publisher", "search_details")


def _search_document(prefix=""):
    return " || chr(10) || ".join(f"coalesce({prefix}{column}, '')" for column in _SEARCHED)


def _search_details_backfill():
    """SQL setting each ticket's search_details from its JIT record: the reason, then the file hashes."""
    newline = "char(10)" if is_sqlite() else "chr(10)"

    def hash_of(key):
        if is_sqlite():
            return f"json_extract(request_info, '$.{key}')"
        return f"(request_info::json ->> '{key}')"

    joined = f" || {newline} || ".join(f"coalesce({piece}, '')" for piece in
                                       ("reason", hash_of("sha256Hash"), hash_of("sha1Hash")))
    # A missing piece leaves an empty line: trimmed at the ends, folded in the middle.
    trim = "trim" if is_sqlite() else "btrim"
    application = f"replace({trim}({joined}, {newline}), {newline} || {newline}, {newline})"
    return [f"UPDATE task SET search_details = (SELECT nullif({details}, '') FROM \"{table}\" jit "
            f"WHERE jit.task_id = task.id) WHERE kind = '{kind}'"
            for table, kind, details in (("x_bets_pmc_jit_application_access_ticket", "application", application),
                                         ("x_bets_pmc_jit_admin_ticket", "admin", "reason"))]


def _one_search_document(migrator):
    """Search also finds the short description, the reason and the file hashes, through one index
    over one document per ticket. SQLite: a contentless FTS5 trigram table, kept by triggers that
    skip updates leaving the document as it was (a decision saves the whole ticket). PostgreSQL:
    a pg_trgm GIN index on the document's expression, kept by PostgreSQL itself."""
    _add_columns(migrator, (models.Task._meta.table_name, "search_details", peewee.TextField(null=True)))
    for update in _search_details_backfill():
        database.execute_sql(update)
    if is_sqlite():
        for trigger in ("task_search_insert", "task_search_delete", "task_search_update"):
            database.execute_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        database.execute_sql("DROP TABLE IF EXISTS task_search")
        new, old = _search_document("new.").replace("chr(", "char("), _search_document("old.").replace("chr(", "char(")
        database.execute_sql("CREATE VIRTUAL TABLE task_search USING fts5(document, content='', tokenize='trigram')")
        database.execute_sql(f"INSERT INTO task_search (rowid, document) "
                             f"SELECT id, {_search_document().replace('chr(', 'char(')} FROM task")
        database.execute_sql(f"CREATE TRIGGER task_search_insert AFTER INSERT ON task BEGIN "
                             f"INSERT INTO task_search (rowid, document) VALUES (new.id, {new}); END")
        database.execute_sql(f"CREATE TRIGGER task_search_delete AFTER DELETE ON task BEGIN "
                             f"INSERT INTO task_search (task_search, rowid, document) "
                             f"VALUES ('delete', old.id, {old}); END")
        database.execute_sql(f"CREATE TRIGGER task_search_update AFTER UPDATE OF {', '.join(_SEARCHED)} ON task "
                             f"WHEN ({old}) IS NOT ({new}) BEGIN "
                             f"INSERT INTO task_search (task_search, rowid, document) "
                             f"VALUES ('delete', old.id, {old}); "
                             f"INSERT INTO task_search (rowid, document) VALUES (new.id, {new}); END")
        return
    database.execute_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    database.execute_sql("DROP INDEX IF EXISTS task_search_trgm")
    database.execute_sql(f"CREATE INDEX task_search_trgm ON task USING gin (({_search_document()}) gin_trgm_ops)")
    from app.tickets import search

    search.keep_search_statistics()
    _analyze_tickets()


# Rows of the file hash backfill per UPDATE (three parameters each: within SQLite's oldest limit of 999).
_HASH_BACKFILL_ROWS = 300


def _file_hashes_backfill():
    """Copy each application ticket's file hashes from its JIT record onto the ticket, in batches."""
    from app.tickets.context import file_hashes

    jit = models.ApplicationAccessTicket
    last = 0
    while True:
        rows = list(jit.select(jit.task, jit.request_info).where(jit.task > last).order_by(jit.task)
                    .limit(_HASH_BACKFILL_ROWS).tuples())
        if not rows:
            return
        last = rows[-1][0]
        values = []
        for task_id, request_info in rows:
            hashes = file_hashes(request_info)
            if hashes["sha256_hash"] or hashes["sha1_hash"]:
                values += [task_id, hashes["sha256_hash"], hashes["sha1_hash"]]
        if values:
            mark = database.obj.param
            rows_sql = ", ".join([f"({mark}, {mark}, {mark})"] * (len(values) // 3))
            database.execute_sql(f"UPDATE task SET sha256_hash = v.column2, sha1_hash = v.column3 "
                                 f"FROM (VALUES {rows_sql}) AS v WHERE task.id = v.column1", values)


def _earlier_request_indexes(migrator):
    """The ticket page's earlier requests of the same person, the same file hash and the same publisher
    and product (app/tickets/context.py), newest first from the ticket's own time: a range of an index
    of their own rather than a walk of every ticket of the last 90 days, or of every ticket holding the
    hash in the search index. Partial: a ticket without the value costs that index nothing."""
    task = models.Task._meta.table_name
    _add_columns(migrator, (task, "sha256_hash", peewee.CharField(max_length=128, null=True)),
                 (task, "sha1_hash", peewee.CharField(max_length=128, null=True)))
    _file_hashes_backfill()
    for name, columns in (("task_requester_newest", ("requester",)), ("task_sha256_newest", ("sha256_hash",)),
                          ("task_sha1_newest", ("sha1_hash",)),
                          ("task_application_newest", ("publisher", "subject"))):
        database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON task ({', '.join(columns)}, opened_at DESC, "
                             f"id DESC) WHERE {columns[0]} IS NOT NULL")


# Tickets read per batch of the outcome backfill, and tickets written per UPDATE (four parameters each:
# within SQLite's oldest limit of 999).
_OUTCOME_BACKFILL_READ = 5000
_OUTCOME_BACKFILL_WRITTEN = 240


def _outcome_backfill():
    """Keep on each ticket what app/tickets/outcome.py says of its JIT record and its latest decision, in
    batches of tickets; a ticket awaiting a decision keeps the columns' defaults."""
    from app.tickets import outcome

    task, decision = models.Task, models.Decision
    last = 0
    while True:
        ids = [task_id for (task_id,) in task.select(task.id).where(task.id > last).order_by(task.id)
               .limit(_OUTCOME_BACKFILL_READ).tuples()]
        if not ids:
            return
        first, last = ids[0], ids[-1]
        jits = {}
        for model in models.JIT_MODELS.values():
            columns = [model.task] + [getattr(model, name) for name in outcome.JIT_COLUMNS]
            jits.update((jit.task_id, jit) for jit in model.select(*columns).where(model.task.between(first, last)))
        latest = {}
        # Oldest first, so each ticket's latest decision is the one left.
        for row in (decision.select(decision.task, decision.decision, decision.status, decision.decided_by,
                                    decision.decided_at, decision.id)
                    .where(decision.task.between(first, last)).order_by(decision.decided_at, decision.id)):
            latest[row.task_id] = row
        values = []
        for task_id in ids:
            # A ticket without its JIT record (none is made so) reads as one EPM said nothing on.
            words = outcome.of(jits.get(task_id) or models.ApplicationAccessTicket(), latest.get(task_id))
            if words != outcome.AWAITING:
                values.append([task_id, *words])
        for start in range(0, len(values), _OUTCOME_BACKFILL_WRITTEN):
            _set_outcomes(values[start:start + _OUTCOME_BACKFILL_WRITTEN])


def _set_outcomes(rows):
    """UPDATE the tickets of `rows`, each [id, outcome, by, at], in one statement."""
    mark = database.obj.param
    at = "v.column4" if is_sqlite() else "CAST(v.column4 AS timestamp)"  # a batch of NULLs alone reads as text
    marks = ", ".join([f"({mark}, {mark}, {mark}, {mark})"] * len(rows))
    database.execute_sql(f"UPDATE task SET outcome = v.column2, outcome_by = v.column3, outcome_at = {at} "
                         f"FROM (VALUES {marks}) AS v WHERE task.id = v.column1",
                         [value for row in rows for value in row])


# The ticket page's earlier requests (app/tickets/context.py): each range's index by what it compares, and the
# columns it counts with, so the range is read from the index alone (the few it lists are read by id: names of
# any length in the index could pass PostgreSQL's limit of an index entry, about 2.7 kB).
_EARLIER_REQUEST_INDEXES = (("task_requester_earlier", ("requester",)), ("task_sha256_earlier", ("sha256_hash",)),
                            ("task_sha1_earlier", ("sha1_hash",)),
                            ("task_application_earlier", ("publisher", "subject")))
_EARLIER_REQUEST_COUNTED = ("outcome", "outcome_at")


def _outcome_on_the_ticket(migrator):
    """How each request ended, who decided and when, kept on its ticket (app/tickets/outcome.py), and the
    indexes of step 31 holding them beside what each range compares: the ticket page counts up to 500 earlier
    requests per range from the index alone, reading no JIT record or decision, and reads only the few it lists
    by id. PostgreSQL holds the counted columns as INCLUDE columns, SQLite as trailing ones."""
    task = models.Task._meta.table_name
    # NOT NULL with a constant default, added in one ALTER TABLE on both databases (PostgreSQL 11+ then
    # rewrites no row).
    _add_columns(migrator, *((task, name, _not_null_with_its_default(field)) for name, field in (
        ("outcome", peewee.CharField(max_length=64, default=contract.OUTCOME_AWAITING)),
        ("outcome_by", peewee.CharField(max_length=255, default="")),
        ("outcome_at", peewee.DateTimeField(null=True)))))
    _outcome_backfill()
    for old in ("task_requester_newest", "task_sha256_newest", "task_sha1_newest", "task_application_newest"):
        database.execute_sql(f"DROP INDEX IF EXISTS {old}")
    for name, keys in _EARLIER_REQUEST_INDEXES:
        ordered = ", ".join((*keys, "opened_at DESC", "id DESC"))
        counted = ", ".join(column for column in _EARLIER_REQUEST_COUNTED if column not in keys)
        columns = f"({ordered}, {counted})" if is_sqlite() else f"({ordered}) INCLUDE ({counted})"
        database.execute_sql(f"CREATE INDEX IF NOT EXISTS {name} ON task {columns} WHERE {keys[0]} IS NOT NULL")


def _purged_requests(_migrator):
    """The RequestIds whose closed ticket retention deleted (models.PurgedRequest), so that neither EPM sending a
    delivery again nor reconciliation opens a second ticket for them. Those deleted before are known from their
    deliveries still kept: applied to a ticket (processed or duplicate), now of none."""
    database.create_tables([models.PurgedRequest])
    incoming, purged = models.IncomingRequest, models.PurgedRequest
    for kind in (contract.KIND_APPLICATION, contract.KIND_ADMIN):
        names = [event.name for event in contract.EVENT_TYPES.values() if event.kind == kind]
        deleted = (incoming.select(incoming.request_id, peewee.Value(kind)).distinct()
                   .where(incoming.status.in_([contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE]),
                          incoming.task.is_null(), incoming.request_id.is_null(False),
                          incoming.event_type.in_(names)))
        purged.insert_from(deleted, [purged.request_id, purged.kind]).on_conflict_ignore().execute()


def _chat_retry_after(migrator):
    """When Slack or Teams asked not to be called again before (Retry-After), kept on each chat row so that a
    change of its ticket does not make it due sooner (app/chat/outbox.py)."""
    _add_columns(migrator, ("x_bets_pmc_jit_chat_post", "not_before", peewee.DateTimeField(null=True)))


def _void_settled_first_approvals(_migrator):
    """A first approval left waiting on a ticket decided after it, or expired, counts for nothing: it no longer
    shows as waiting for a second approver, nor completes a later approval once EPM refused the decision taken.
    Deciding and expiring now void it themselves (app/decisions/service.py, app/jobs/expiry.py)."""
    database.execute_sql(
        "UPDATE x_bets_pmc_jit_pending_approval SET status = 'void' WHERE status = 'pending' AND ("
        "EXISTS (SELECT 1 FROM x_bets_pmc_jit_decision d WHERE d.task_id = x_bets_pmc_jit_pending_approval.task_id"
        " AND d.decided_at >= x_bets_pmc_jit_pending_approval.created_at)"
        " OR EXISTS (SELECT 1 FROM task t WHERE t.id = x_bets_pmc_jit_pending_approval.task_id"
        " AND t.expired_at IS NOT NULL))")


def _encrypted_webhook_url(_migrator):
    """The notification webhook URL (its path is the credential Slack or Teams checks) is encrypted at rest like
    the passwords, so a backup no longer carries it readable."""
    encrypt_stored(models.Configuration._meta.table_name, ["notify_webhook_url"])


def _expired_outcomes(_migrator):
    """A request that expired before the expiry job kept its outcome still read "Awaiting decision" where the
    ticket page lists earlier requests: it reads Expired, as of its expiry (app/tickets/outcome.py). One whose
    decision EPM refused for good keeps saying so."""
    task = models.Task
    (task.update(outcome=contract.OUTCOME_EXPIRED, outcome_by="", outcome_at=task.expired_at)
     .where(task.expired_at.is_null(False), task.outcome == contract.OUTCOME_AWAITING).execute())


# Indexes on a ticket's foreign key where another index of the table leads with the same column: that one
# finds a ticket's rows (and serves ON DELETE CASCADE) as well, and each insert kept both.
_REDUNDANT_TASK_INDEXES = ("sys_journal_field_task_id", "x_bets_pmc_jit_pending_approval_task_id",
                           "x_bets_pmc_jit_notification_task_id", "x_bets_pmc_jit_chat_post_task_id")


def _redundant_task_indexes(_migrator):
    """Work notes, first approvals, notifications and chat posts lose their index on the ticket alone: the index
    on (the ticket, ...) each already has finds the same rows, and every work note a delivery writes updated both."""
    for name in _REDUNDANT_TASK_INDEXES:
        database.execute_sql(f"DROP INDEX IF EXISTS {name}")


def _waiting_policy_evaluations(_migrator):
    """An evaluation skipped because its ticket took no decision for a while (inactive, a decision on its way to
    EPM) was done, and a reopened ticket then needed one approver whatever its rules said: it waits for the ticket
    to take a decision again, and nobody approves the ticket until its rules have run (app/policies/queue.py)."""
    from app.policies.models import EVALUATION_DONE, EVALUATION_WAITING, PolicyEvaluation

    outcomes = [f"The request could no longer take a decision ({message}); no rule ran."
                for message in (contract.MSG_INACTIVE, contract.MSG_DECISION_IN_FLIGHT)]
    skipped = (PolicyEvaluation.status == EVALUATION_DONE) & PolicyEvaluation.outcome.in_(outcomes)
    (models.Task.update(approvals_required=None)
     .where(models.Task.id.in_(PolicyEvaluation.select(PolicyEvaluation.task).where(skipped))).execute())
    PolicyEvaluation.update(status=EVALUATION_WAITING, finished_at=None).where(skipped).execute()


def _unresolved_conflicts(migrator):
    """Each decision counts the attempts EPM answered 409 without its record telling whether the decision was
    applied, apart from its attempts: their bound no longer counts an outage's attempts before them. A decision
    such a 409 left waiting counts none yet, and is given the whole retry schedule from its next attempt."""
    _add_columns(migrator, (models.Decision._meta.table_name, "unresolved_conflicts", peewee.IntegerField(default=0)))


def _expired_refusals():
    """A request whose decision EPM refused for good, and that expired since (nobody decided it again in time), read
    "Failed to send" where the ticket page lists earlier requests: it reads Expired, as of its expiry, as the ticket
    list and the expiry job now say (app/tickets/outcome.py)."""
    task = models.Task
    (task.update(outcome=contract.OUTCOME_EXPIRED, outcome_by="", outcome_at=task.expired_at)
     .where(task.expired_at.is_null(False), task.outcome == contract.OUTCOME_FAILED_TO_SEND).execute())


def _conflict_count_and_expired_refusals(migrator):
    """The two changes of what is stored that step 40 makes: the count of unresolved 409s, the expired refusals."""
    _unresolved_conflicts(migrator)
    _expired_refusals()


MIGRATIONS = [
    (1, "initial schema", _initial_schema),
    (2, "decisions and their delivery outbox", _decisions),
    (3, "audit log", _audit_log),
    (4, "operations logs", _operations_logs),
    (5, "scheduler lease, notifications and retention settings", _scheduler_notifications_retention),
    (6, "validation policies, bypass codes and ITSM connections", _policies_and_itsm),
    (7, "sign-in throttling and a second webhook password", _security),
    (8, "ticket search index", _ticket_search_index),
    (9, "application log retention setting", _app_log_retention),
    (10, "EPM access token shared by every process", _shared_epm_token),
    (12, "search estimates from a larger sample", _search_statistics),
    (14, "one scheduler lease instead of a lock per job", _one_scheduler_lease),
    (15, "the number of approvers a ticket needs, kept on the ticket", _approvals_on_the_ticket),
    (16, "deliveries queued intake left become tickets; its table and column go", _apply_queued_deliveries),
    (17, "token request authentication and scope; correlation ids of EPM calls", _token_request_and_correlation),
    (18, "EPM record statuses as decisions; EPM's last record of each request", _epm_records),
    (19, "what a later EPM update made of the final decision: revoked, ended early, conflict",
     _epm_outcome_and_conflict),
    (20, "requests left undecided too long are marked expired", _pending_expiry),
    (21, "a setting allowing approvers to approve their own requests", _self_approval_setting),
    (22, "a session epoch on each account, so sign-out ends its sessions on the server", _session_epoch),
    (23, "audit entries signed with a key kept outside the database; earlier entries closed as one segment",
     _keyed_audit_chain),
    (24, "password change at next sign-in, two-factor sign-in, a record of each browser session", _accounts),
    (25, "accounts of the OpenID Connect provider, keyed on its issuer and subject", _identity_provider_accounts),
    (26, "Slack and Teams: the chat outbox, Slack signatures seen, Slack users linked to accounts", _chat),
    (27, "a configuration version the database moves on every change, so processes can keep the record",
     _configuration_version),
    (28, "search also finds the short description, reason and file hashes, through one document per ticket",
     _one_search_document),
    (29, "marks allowing private addresses for EPM and the mail server", _internal_marks),
    (31, "earlier requests of the same person, file and application found through their own indexes",
     _earlier_request_indexes),
    (32, "how each request ended kept on its ticket; earlier requests read from their indexes alone",
     _outcome_on_the_ticket),
    (33, "the RequestIds of tickets retention deleted are kept, so no request gets a second ticket",
     _purged_requests),
    (34, "chat messages wait as long as Slack or Teams asked, whatever changes meanwhile", _chat_retry_after),
    (35, "first approvals of tickets decided or expired since count for nothing", _void_settled_first_approvals),
    (36, "the notification webhook URL encrypted at rest, like the passwords", _encrypted_webhook_url),
    (37, "requests that expired before their outcome was kept read Expired, not Awaiting decision",
     _expired_outcomes),
    (38, "work notes, first approvals, notifications and chat posts keep one index on their ticket, not two",
     _redundant_task_indexes),
    (39, "policy evaluations skipped while a ticket took no decision wait for it to take one again",
     _waiting_policy_evaluations),
    (40, "a 409 whose EPM record does not tell the decision is given up after its own retries, not an outage's; "
     "requests that expired after EPM refused their decision read Expired", _conflict_count_and_expired_refusals),
]

LATEST_VERSION = max(version for version, _description, _step in MIGRATIONS)


# Arbitrary constant naming the PostgreSQL advisory lock that serialises upgrades.
_UPGRADE_LOCK_KEY = 73_015_201


def upgrade():
    """Run every migration not yet applied, in one transaction; returns the descriptions run."""
    from playhouse.migrate import SchemaMigrator

    migrator = SchemaMigrator.from_database(database.obj)
    applied = []
    with write_transaction():
        # Two processes running `init` at once: the second waits here (the SQLite
        # write lock, or this advisory lock) and then finds the steps done.
        if not is_sqlite():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_UPGRADE_LOCK_KEY,))
        database.create_tables([models.SchemaVersion])
        # Steps applied, not just the newest: a step numbered below one already applied
        # (work merged out of order) still runs.
        done = {row.version for row in models.SchemaVersion.select()}
        for version, description, step in MIGRATIONS:
            if version not in done:
                step(migrator)
                models.SchemaVersion.create(version=version)
                applied.append(description)
    return applied
