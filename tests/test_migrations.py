"""Schema upgrades: `jitbroker init` on a database queued intake left deliveries in turns them into
tickets, each keeping its sys_id, and its table and column go; nothing stored is lost."""
import json
import uuid
from datetime import timedelta

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from app import contract
from app.db import database
from app.migrations import _QueuedDelivery
from app.configuration import update_configuration
from app.models import (CONFIGURATION_VERSION, Account, Configuration, Decision, IncomingRequest, PurgedRequest,
                        SchemaVersion, Task, new_sys_id, utcnow)
from app.policies import rules as policy_rules
from app.policies.models import PolicyEvaluation
from app.tickets import search
from tests import factories
from tests.outcomes import assert_outcome_kept

INCOMING = IncomingRequest._meta.table_name


def as_queued_intake_left_it():
    """The schema before step 16: the `queued` column (indexed) and the deliveries' own table."""
    SchemaVersion.delete().where(SchemaVersion.version == 16).execute()
    migrator = SchemaMigrator.from_database(database.obj)
    # A default in the table itself, so rows written through today's model (without the column) fit.
    migrate(migrator.add_column(INCOMING, "queued",
                                peewee.BooleanField(default=False, constraints=[peewee.SQL("DEFAULT FALSE")])))
    database.execute_sql(f'CREATE INDEX incomingrequest_queued_id ON "{INCOMING}" (queued, id)')
    database.create_tables([_QueuedDelivery])


def taken_in(body):
    """A delivery the processor had taken into the incoming-request log, not yet applied."""
    row = IncomingRequest.create(raw_body=json.dumps(body).encode(), content_type="application/json",
                                 event_type=body["EventType"], request_id=body["RequestId"])
    database.execute_sql(f'UPDATE "{INCOMING}" SET queued = TRUE WHERE id = {row.id}')
    return row.sys_id


def stored(body):
    """A delivery the webhook had stored, not yet taken in."""
    sys_id = new_sys_id()
    _QueuedDelivery.create(sys_id=sys_id, event_type=body["EventType"], request_id=body["RequestId"],
                           raw_body=json.dumps(body).encode(), content_type="application/json",
                           headers={"User-Agent": "EPM"}, source_address="10.0.0.7", received_at=utcnow())
    return sys_id


def test_init_turns_the_deliveries_queued_intake_left_into_tickets_and_drops_its_table(app, runner, deliver):
    assert deliver(factories.application_request("req-done")).status_code == 200  # processed before: untouched
    policy_rules.create_rule({"name": "Deny all", "outcome": "auto_deny"}, "root")
    as_queued_intake_left_it()
    created = taken_in(factories.application_request("req-a"))
    finalized = stored(factories.application_decision("req-a"))
    early_update = stored(factories.admin_decision("req-b"))  # before its created event
    admin_created = stored(factories.admin_request("req-b"))
    invalid = stored({**factories.application_request("req-bad"), "requestInfo": "not an object"})

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: deliveries queued intake left become tickets" in result.output
    rows = {row.sys_id: row for row in IncomingRequest.select()}
    assert len(rows) == 6, "every delivery kept, none added"
    assert {sys_id: rows[sys_id].status for sys_id in (created, finalized, early_update, admin_created, invalid)} == {
        created: contract.INCOMING_PROCESSED, finalized: contract.INCOMING_PROCESSED,
        early_update: contract.INCOMING_PROCESSED, admin_created: contract.INCOMING_PROCESSED,
        invalid: contract.INCOMING_ERROR}
    assert rows[invalid].error == "requestInfo: _schema: Expected a JSON object."
    assert rows[admin_created].headers == {"User-Agent": "EPM"} and rows[admin_created].source_address == "10.0.0.7"
    assert {task.jit_request.request_id for task in Task.select()} == {"req-done", "req-a", "req-b"}
    assert {rows[sys_id].request_id for sys_id in (created, admin_created, invalid)} == {"req-a", "req-b", "req-bad"}
    assert rows[created].task == rows[finalized].task and rows[created].task.jit_request.decision_final
    assert rows[early_update].task == rows[admin_created].task and rows[admin_created].task.jit_request.decision_final
    # The new tickets meet the policies as if their webhook had made them.
    assert {evaluation.task for evaluation in PolicyEvaluation.select()} == {rows[created].task,
                                                                             rows[admin_created].task}
    assert not database.table_exists(_QueuedDelivery._meta.table_name)
    assert "queued" not in {column.name for column in database.get_columns(INCOMING)}
    assert runner.invoke(args=["init"]).exit_code == 0, "and a second init finds nothing to do"


def test_an_invalid_queued_update_does_not_cost_its_created_event_the_ticket(app, runner):
    as_queued_intake_left_it()
    created = stored(factories.application_request("req-c"))
    invalid_update = stored({**factories.application_decision("req-c"), "requestInfo": "not an object"})

    assert runner.invoke(args=["init"]).exit_code == 0

    assert IncomingRequest.get(IncomingRequest.sys_id == created).status == contract.INCOMING_PROCESSED
    assert IncomingRequest.get(IncomingRequest.sys_id == invalid_update).status == contract.INCOMING_ERROR
    assert [task.jit_request.request_id for task in Task.select()] == ["req-c"]


def test_init_on_a_database_that_never_ran_queued_intake_only_records_the_step(app, runner):
    SchemaVersion.delete().where(SchemaVersion.version == 16).execute()
    result = runner.invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert SchemaVersion.get_or_none(SchemaVersion.version == 16) is not None


def test_init_keeps_the_request_ids_of_tickets_retention_deleted_before_from_their_deliveries(app, runner, deliver):
    from app.jobs import retention

    for body in (factories.admin_request("req-purged"), factories.admin_decision("req-purged"),
                 factories.application_request("req-open")):
        assert deliver(body).status_code == 200
    long_ago, task = utcnow() - timedelta(days=400), Task.get(Task.request_id == "req-purged")
    Task.update(state=task.ticket_type.closed_state, closed_at=long_ago, updated_at=long_ago).where(
        Task.id == task.id).execute()
    retention.purge()  # the deliveries, received today, outlive their ticket
    assert [task.request_id for task in Task.select()] == ["req-open"]
    SchemaVersion.delete().where(SchemaVersion.version == 33).execute()
    database.drop_tables([PurgedRequest])  # as the purge left it before step 33

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: the RequestIds of tickets retention deleted are kept" in result.output
    assert [(row.kind, row.request_id) for row in PurgedRequest.select()] == [(contract.KIND_ADMIN, "req-purged")]
    again = deliver(factories.admin_request("req-purged")).json["result"]
    assert (again["status"], again["ticket"]) == (contract.INCOMING_DUPLICATE, None)
    assert [task.request_id for task in Task.select()] == ["req-open"]


def test_init_adds_the_token_request_settings_and_correlation_columns_keeping_the_configuration(app, runner):
    from app.logs.models import OutboundCall

    Configuration.default()
    update_configuration({"client_id": "kept-client"})
    configuration, call = Configuration._meta.table_name, OutboundCall._meta.table_name
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(migrator.drop_column(configuration, "token_auth_method"),
            migrator.drop_column(configuration, "token_scope"),
            migrator.drop_column(call, "correlation_id"), migrator.drop_column(call, "answered_correlation_id"))
    SchemaVersion.delete().where(SchemaVersion.version == 17).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: token request authentication and scope" in result.output
    record = Configuration.default()
    assert (record.client_id, record.token_auth_method, record.token_scope) == (
        "kept-client", contract.TOKEN_AUTH_POST, "")
    assert {"correlation_id", "answered_correlation_id"} <= {column.name for column in database.get_columns(call)}


def test_init_adds_the_status_mapping_settings_and_epm_record_columns_keeping_what_is_stored(app, runner, make_ticket):
    from app.models import AdminTicket, ApplicationAccessTicket

    update_configuration({"client_id": "kept-client"})
    task = make_ticket(factories.admin_request())
    configuration = Configuration._meta.table_name
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(migrator.drop_column(configuration, "epm_approved_statuses"),
            migrator.drop_column(configuration, "epm_denied_statuses"),
            *(migrator.drop_column(model._meta.table_name, column) for model in (ApplicationAccessTicket, AdminTicket)
              for column in ("epm_record", "epm_checked_at")))
    SchemaVersion.delete().where(SchemaVersion.version == 18).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: EPM record statuses as decisions" in result.output
    record = Configuration.default()
    assert (record.client_id, record.epm_approved_statuses, record.epm_denied_statuses) == (
        "kept-client", "Approved, 2000", "Denied, 2001")
    jit = Task.get_by_id(task.id).jit_request
    assert (jit.epm_record, jit.epm_checked_at) == (None, None)


def test_init_adds_the_self_approval_setting_off_keeping_the_configuration(app, runner):
    Configuration.default()
    update_configuration({"client_id": "kept-client"})
    table = Configuration._meta.table_name
    migrate(SchemaMigrator.from_database(database.obj).drop_column(table, "allow_self_approval"))
    SchemaVersion.delete().where(SchemaVersion.version == 21).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: a setting allowing approvers to approve their own requests" in result.output
    record = Configuration.default()
    assert (record.client_id, record.allow_self_approval) == ("kept-client", False)


def test_init_adds_the_session_epoch_keeping_the_accounts(app, runner):
    factories.account("kept", contract.ROLE_USER)
    table = Account._meta.table_name
    migrate(SchemaMigrator.from_database(database.obj).drop_column(table, "session_epoch"))
    SchemaVersion.delete().where(SchemaVersion.version == 22).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: a session epoch on each account, so sign-out ends its sessions on the server" \
        in result.output
    account = Account.by_username("kept")
    assert (account.role, account.session_epoch) == (contract.ROLE_USER, 0)


def test_init_counts_unresolved_409s_apart_from_attempts_keeping_the_outbox(app, runner, make_ticket):
    task = make_ticket(factories.application_request("kept-in-outbox"))
    Decision.create(task=task, decision=contract.DECISION_APPROVED, reason="ok", decided_by="jchen",
                    ticket_url="https://broker/t", status=contract.DELIVERY_PENDING, attempts=9, last_status=409)
    migrate(SchemaMigrator.from_database(database.obj).drop_column(Decision._meta.table_name, "unresolved_conflicts"))
    SchemaVersion.delete().where(SchemaVersion.version == 40).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: a 409 whose EPM record does not tell the decision is given up after its own " \
        "retries" in result.output
    decision = Decision.get()
    assert (decision.task_id, decision.status, decision.attempts, decision.last_status,
            decision.unresolved_conflicts) == (task.id, contract.DELIVERY_PENDING, 9, 409, 0)


def test_init_adds_the_account_columns_and_tables_of_migration_24_keeping_the_accounts(app, runner):
    from app.auth.models import BrowserSession, RecoveryCode

    factories.account("kept", contract.ROLE_USER)
    table = Account._meta.table_name
    database.drop_tables([BrowserSession, RecoveryCode])
    migrator = SchemaMigrator.from_database(database.obj)
    migrate(*(migrator.drop_column(table, column)
              for column in ("must_change_password", "totp_secret", "totp_enabled_at", "totp_last_step")))
    SchemaVersion.delete().where(SchemaVersion.version == 24).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: password change at next sign-in, two-factor sign-in, a record of each browser " \
           "session" in result.output
    account = Account.by_username("kept")
    assert (account.role, account.must_change_password, account.totp_enabled_at) == (contract.ROLE_USER, False, None)
    assert BrowserSession.table_exists() and RecoveryCode.table_exists()


def test_init_adds_the_identity_provider_columns_keeping_the_accounts(app, runner):
    factories.account("kept", contract.ROLE_USER)
    table = Account._meta.table_name
    for index in database.get_indexes(table):
        if "idp_issuer" in index.columns:
            database.execute_sql(f'DROP INDEX "{index.name}"')
    schema = SchemaMigrator.from_database(database.obj)
    columns = ("idp_issuer", "idp_subject", "idp_tokens", "idp_checked_at")
    migrate(*(schema.drop_column(table, name) for name in columns),
            schema.drop_column(Configuration._meta.table_name, "local_sign_in_admins_only"))
    SchemaVersion.delete().where(SchemaVersion.version == 25).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: accounts of the OpenID Connect provider" in result.output
    account = Account.by_username("kept")
    assert (account.role, account.idp_subject, account.signs_in_with_provider) == (contract.ROLE_USER, None, False)
    assert Configuration.default().local_sign_in_admins_only is False
    assert any(index.unique and index.columns == ["idp_issuer", "idp_subject"] for index in database.get_indexes(table))


def _configuration_version():
    table = Configuration._meta.table_name
    return database.execute_sql(f'SELECT "{CONFIGURATION_VERSION}" FROM "{table}"').fetchone()[0]


def test_an_upgrade_adding_configuration_columns_keeps_the_version_trigger_and_search_triggers(app, runner,
                                                                                               make_ticket):
    """An SQLite table rebuilt to add a NOT NULL column loses its triggers: columns are added without one."""
    Configuration.default()
    table = Configuration._meta.table_name
    for column in ("epm_internal", "smtp_internal"):
        database.execute_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
    SchemaVersion.delete().where(SchemaVersion.version == 29).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: marks allowing private addresses" in result.output
    before = _configuration_version()
    Configuration.update(auto_close=True).execute()
    assert _configuration_version() == before + 1
    assert Configuration.default().epm_internal is False
    ticket = make_ticket(short_description="Trigger kept after the upgrade")
    assert [task.id for task in Task.select().where(search.text_condition("kept after the upgr"))] == [ticket.id]


def test_the_configuration_version_step_runs_again_without_error(app):
    from app.migrations import MIGRATIONS

    Configuration.default()
    [step] = [step for version, _description, step in MIGRATIONS if version == 27]
    step(SchemaMigrator.from_database(database.obj))
    before = _configuration_version()
    Configuration.update(auto_close=True).execute()
    assert _configuration_version() == before + 1


def test_upgrade_copies_each_application_tickets_file_hashes_onto_it(app, make_ticket):
    """A database from before step 31: its tickets' hashes are read from their JIT records, and the
    ticket page finds an earlier request for the same file through them."""
    from app.migrations import upgrade
    from app.tickets.context import decision_context

    earlier = make_ticket(factories.application_request(sha256Hash="AB" * 32, sha1Hash="cd" * 20,
                                                        productName="Renamed"))
    admin = make_ticket(factories.admin_request())
    current = make_ticket(factories.application_request(sha256Hash="ab" * 32, sha1Hash=None))
    Task.update(sha256_hash=None, sha1_hash=None).execute()
    for index in ("task_requester_newest", "task_sha256_newest", "task_sha1_newest", "task_application_newest"):
        database.execute_sql(f"DROP INDEX IF EXISTS {index}")  # step 32 replaced them
    SchemaVersion.delete().where(SchemaVersion.version == 31).execute()

    assert upgrade() == ["earlier requests of the same person, file and application found through their own indexes"]
    hashes = {task.id: (task.sha256_hash, task.sha1_hash) for task in Task.select()}
    assert hashes == {earlier.id: ("ab" * 32, "cd" * 20), admin.id: (None, None), current.id: ("ab" * 32, None)}
    found = decision_context(Task.get_by_id(current.id), 5).same_application
    assert [request.number for request in found.requests] == [earlier.number]
    for index in ("task_requester_newest", "task_sha256_newest", "task_sha1_newest", "task_application_newest"):
        database.execute_sql(f"DROP INDEX {index}")  # the schema as step 32 leaves it, for the tests after


OUTCOME_COLUMNS = ("outcome", "outcome_by", "outcome_at")
EARLIER_INDEXES = ("task_requester_earlier", "task_sha256_earlier", "task_sha1_earlier", "task_application_earlier")
STEP_31_INDEXES = (("task_requester_newest", "requester"), ("task_sha256_newest", "sha256_hash"),
                   ("task_sha1_newest", "sha1_hash"), ("task_application_newest", "publisher, subject"))


def as_step_31_left_it():
    """The schema before step 32: no outcome columns on the task, the earlier requests' indexes of step 31."""
    for index in EARLIER_INDEXES:
        database.execute_sql(f"DROP INDEX {index}")
    for column in OUTCOME_COLUMNS:
        database.execute_sql(f"ALTER TABLE task DROP COLUMN {column}")
    for index, columns in STEP_31_INDEXES:
        database.execute_sql(f"CREATE INDEX IF NOT EXISTS {index} ON task ({columns}, opened_at DESC, id DESC) "
                             f"WHERE {columns.split(',')[0]} IS NOT NULL")
    SchemaVersion.delete().where(SchemaVersion.version == 32).execute()


def test_upgrade_keeps_each_tickets_outcome_on_it_as_its_records_say(app, make_ticket, deliver, approver):
    """A database from before step 32: each ticket's outcome is worked out from its JIT record and its decisions,
    the indexes of step 31 give way to ones holding it, and the ticket page lists earlier requests from them."""
    from app.decisions import service as decisions
    from app.migrations import MIGRATIONS, upgrade
    from app.tickets.context import decision_context
    from tests.outcomes import fresh_outcome, kept_outcome

    same_file = {"sha256Hash": "ab" * 32}
    make_ticket(factories.application_request("up-approved", **same_file), age=timedelta(days=6))
    deliver(factories.application_decision("up-approved"))
    make_ticket(factories.admin_request("up-revoked", UserName="CORP\\mrivera"), age=timedelta(days=5))
    deliver(factories.admin_decision("up-revoked"))
    deliver(factories.admin_revocation("up-revoked"))
    sending = make_ticket(factories.application_request("up-sending", **same_file), age=timedelta(days=4))
    decisions.decide(sending, approver, contract.DECISION_APPROVED, "ok", "once", send_now=False)
    refused = make_ticket(factories.application_request("up-refused", **same_file), age=timedelta(days=3))
    Decision.create(task=refused, decision=contract.DECISION_DENIED, reason="no", decided_by=approver.username,
                    ticket_url="https://broker/t", status=contract.DELIVERY_FAILED)
    make_ticket(factories.application_request("up-waiting", **same_file), age=timedelta(days=2))
    current = make_ticket(factories.application_request("up-current", **same_file))
    expected = {task.id: fresh_outcome(task) for task in Task.select()}
    assert sorted(words for words, _by, _at in expected.values()) == sorted([
        "Approved", contract.EPM_OUTCOME_REVOKED, "Approved - sending to EPM", "Failed to send",
        contract.OUTCOME_AWAITING, contract.OUTCOME_AWAITING])
    as_step_31_left_it()

    assert upgrade() == ["how each request ended kept on its ticket; earlier requests read from their indexes alone"]

    assert {task.id: kept_outcome(task) for task in Task.select()} == expected
    indexes = {index.name for index in database.get_indexes("task")}
    assert set(EARLIER_INDEXES) <= indexes and not indexes & {name for name, _columns in STEP_31_INDEXES}
    context = decision_context(Task.get_by_id(current.id), 5)
    assert dict(context.same_application.outcomes) == {"Approved": 1, "Approved - sending to EPM": 1,
                                                       "Failed to send": 1, contract.OUTCOME_AWAITING: 1}
    assert dict(context.same_user.outcomes)[contract.EPM_OUTCOME_REVOKED] == 1

    [step] = [step for version, _description, step in MIGRATIONS if version == 32]
    step(SchemaMigrator.from_database(database.obj))  # again: changes nothing
    assert {task.id: kept_outcome(task) for task in Task.select()} == expected


def test_upgrade_keeps_requests_that_expired_before_as_expired_not_awaiting(app, make_ticket):
    """A database from before step 37: its expiry job marked requests expired and left them awaiting a decision;
    the upgrade makes them read Expired as of their expiry, and leaves the others alone."""
    from app.migrations import MIGRATIONS, upgrade
    from tests.outcomes import fresh_outcome, kept_outcome

    expired = make_ticket(factories.application_request("up-expired"), age=timedelta(hours=30))
    refused = make_ticket(factories.application_request("up-refused"), age=timedelta(hours=30))
    Decision.create(task=refused, decision=contract.DECISION_DENIED, reason="no", decided_by="jchen",
                    ticket_url="https://broker/t", status=contract.DELIVERY_FAILED)
    waiting = make_ticket(factories.application_request("up-waiting"))
    now = utcnow()
    # As the expiry job of an earlier version left them: expired, the outcome untouched.
    Task.update(expired_at=now).where(Task.id.in_([expired.id, refused.id])).execute()
    Task.update(outcome=contract.OUTCOME_FAILED_TO_SEND, outcome_by="jchen").where(Task.id == refused.id).execute()
    assert kept_outcome(expired)[0] == contract.OUTCOME_AWAITING
    [(version, description)] = [(number, text) for number, text, step in MIGRATIONS if number == 37]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]

    assert kept_outcome(expired) == (contract.OUTCOME_EXPIRED, "", Task.get_by_id(expired.id).expired_at)
    assert kept_outcome(refused)[:2] == (contract.OUTCOME_FAILED_TO_SEND, "jchen")
    assert kept_outcome(waiting) == (contract.OUTCOME_AWAITING, "", None)
    for task in (expired, waiting):
        assert kept_outcome(task) == fresh_outcome(task)


def test_upgrade_makes_requests_that_expired_after_epm_refused_their_decision_read_expired(app, make_ticket):
    """A database from before step 40: a request whose decision EPM refused, expired since, kept "Failed to send";
    the upgrade makes it read Expired as of its expiry, and leaves a refused one still open to a decision alone."""
    from app.migrations import MIGRATIONS, upgrade
    from tests.outcomes import kept_outcome

    expired, refused = (make_ticket(factories.application_request(name), age=timedelta(hours=30))
                        for name in ("up-expired-refused", "up-refused"))
    for task in (expired, refused):
        Decision.create(task=task, decision=contract.DECISION_DENIED, reason="no", decided_by="jchen",
                        ticket_url="https://broker/t", status=contract.DELIVERY_FAILED)
    Task.update(outcome=contract.OUTCOME_FAILED_TO_SEND, outcome_by="jchen").where(
        Task.id.in_([expired.id, refused.id])).execute()
    Task.update(expired_at=utcnow()).where(Task.id == expired.id).execute()  # as an earlier expiry job left it
    [(version, description)] = [(number, text) for number, text, _step in MIGRATIONS if number == 40]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]

    assert kept_outcome(expired) == (contract.OUTCOME_EXPIRED, "", Task.get_by_id(expired.id).expired_at)
    assert kept_outcome(refused)[:2] == (contract.OUTCOME_FAILED_TO_SEND, "jchen")
    assert_outcome_kept(expired)


def test_a_new_postgresql_installation_checks_a_ticket_reference_by_index_as_tickets_arrive(postgres_url):
    """The foreign-key check of each work note, delivery and JIT record keeps its plan for the connection's
    life; on a new installation it must not be a plan for an empty ticket table, which reads every ticket."""
    from app import create_app
    from app.db import close_pools
    from app.intake import service as intake
    from app.migrations import upgrade
    from app.models import WorkNote
    from tests.conftest import _admin_connection

    name = f"jitbroker_fresh_{uuid.uuid4().hex[:8]}"
    admin = _admin_connection()
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        app = create_app({"database_url": f"{postgres_url.rsplit('/', 1)[0]}/{name}", "secret_key": "test",
                          "TESTING": True})
        with app.app_context(), database.connection_context():
            upgrade()
            for number in range(6):  # past the executions after which a kept plan stays generic
                body = json.dumps(factories.application_request(f"req-{number}")).encode()
                intake.receive(intake.Delivery(body, "application/json"))
            columns = [field.column_name for field in Task._meta.sorted_fields
                       if field.name not in ("id", "sys_id", "number")]
            database.execute_sql(
                f'INSERT INTO task (sys_id, number, {", ".join(columns)}) '
                f'SELECT md5(n::text), \'INC\' || lpad(n::text, 7, \'0\'), {", ".join(columns)} '
                f'FROM (SELECT * FROM task LIMIT 1) AS one, generate_series(10, 3009) AS n')
            newest = Task.select().order_by(Task.id.desc()).get()
            with database.atomic():
                WorkNote.create(task=newest, text="on the newest of 3,000 tickets", author="system")
                (scanned,) = database.execute_sql(
                    "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables WHERE relname = 'task'").fetchone()
            assert scanned < 100, f"the work note's check of its ticket read {scanned} tickets"
        close_pools()
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def test_upgrade_keeps_one_index_on_the_ticket_per_table_and_a_deleted_ticket_still_takes_its_rows(
        app, make_ticket, approver):
    """A database from before step 38 indexed each work note, first approval, notification and chat post by its
    ticket twice (the foreign key's own index, and one leading with the ticket); the upgrade drops the first, and
    a ticket's rows are still found, and go with it, through the other."""
    from app.chat.models import ChatPost
    from app.decisions.models import PendingApproval
    from app.migrations import MIGRATIONS, upgrade
    from app.models import WorkNote
    from app.notify.models import Notification

    models = (WorkNote, PendingApproval, Notification, ChatPost)
    for model in models:  # as an earlier version's create_tables left them
        table = model._meta.table_name
        database.execute_sql(f'CREATE INDEX "{table}_task_id" ON "{table}" ("task_id")')
    ticket = make_ticket(factories.application_request("up-indexes"))
    PendingApproval.create(task=ticket, approver=approver.username, reason="first")
    Notification.create(task=ticket, kind="created", channel="email")
    ChatPost.create(task=ticket, service="slack")
    [(version, description)] = [(number, text) for number, text, step in MIGRATIONS if number == 38]
    SchemaVersion.delete().where(SchemaVersion.version == version).execute()

    assert upgrade() == [description]

    for model in models:
        leading = [index.columns for index in database.get_indexes(model._meta.table_name)
                   if index.columns[0] == "task_id"]
        assert len(leading) == 1 and len(leading[0]) > 1, (model, leading)
        assert model.select().where(model.task == ticket).count() >= 1
    Task.delete_by_id(ticket.id)
    assert [model.select().where(model.task == ticket.id).count() for model in models] == [0, 0, 0, 0]
