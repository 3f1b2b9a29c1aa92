"""Entries made before keying: one legacy segment, closed by a signed entry that records its head.

The entries are written as the unkeyed chain wrote them (no key id, SHA-256), then migration 23
runs as `jitbroker init` would after an upgrade."""
from playhouse.migrate import SchemaMigrator, migrate

from app.audit import keys
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.db import database
from app.migrations import MIGRATIONS
from app.models import SchemaVersion, new_sys_id, utcnow

KEYED_CHAIN_STEP = dict((version, step) for version, _description, step in MIGRATIONS)[23]


def _legacy_entry(actor, previous_hash):
    """An entry as the chain stored it before keying: no key id, an unkeyed SHA-256."""
    entry = AuditEntry(sys_id=new_sys_id(), created_at=utcnow(), actor=actor, action=audit.SIGN_IN,
                       object_type="account", object_id=actor, detail={}, previous_hash=previous_hash, key_id=None)
    entry.entry_hash = audit.compute_hash(audit.entry_fields(entry))
    entry.save(force_insert=True)
    return entry


def _legacy_chain(*actors):
    entries, previous = [], audit.GENESIS_HASH
    for actor in actors:
        entries.append(_legacy_entry(actor, previous))
        previous = entries[-1].entry_hash
    return entries


def _upgrade():
    KEYED_CHAIN_STEP(None)
    return AuditEntry.select().order_by(AuditEntry.id.desc()).first()


def test_the_upgrade_closes_the_legacy_segment_with_a_signed_entry_recording_its_head(app):
    legacy = _legacy_chain("ann", "bob")

    marker = _upgrade()

    assert marker.action == audit.CHAIN_KEYED and marker.key_id == keys.current().current_id
    assert marker.previous_hash == legacy[-1].entry_hash
    assert marker.detail == {"legacy_entries": 2, "legacy_head_hash": legacy[-1].entry_hash,
                             "key_id": keys.current().current_id}
    result = audit.verify()
    assert result.intact and result.checked == 3
    assert [(segment.key_id, segment.count) for segment in result.segments] == [(None, 2), (marker.key_id, 1)]


def test_the_upgrade_of_an_empty_or_keyed_log_writes_nothing(app):
    assert _upgrade() is None
    audit.record(audit.SIGN_IN, "ann", "account", "ann")
    _upgrade()
    assert AuditEntry.select().count() == 1


def test_a_rewritten_legacy_entry_fails_verify(app):
    first, _second = _legacy_chain("ann", "bob")
    _upgrade()
    AuditEntry.update(actor="mallory").where(AuditEntry.id == first.id).execute()
    edited = AuditEntry.get_by_id(first.id)
    AuditEntry.update(entry_hash=audit.compute_hash(audit.entry_fields(edited))).where(
        AuditEntry.id == first.id).execute()

    result = audit.verify()

    # Its recomputed hash no longer matches the link the next entry keeps.
    assert not result.intact and result.bad.position == first.id + 1


def test_an_unsigned_entry_appended_after_keying_fails_verify(app):
    _legacy_chain("ann")
    marker = _upgrade()
    forged = _legacy_entry("mallory", marker.entry_hash)

    result = audit.verify()

    assert result.bad.position == forged.id and "no key signature but follows signed entries" in result.problem


def test_a_chain_cut_back_to_its_legacy_part_fails_verify(app, runner):
    first, _second = _legacy_chain("ann", "bob")
    marker = _upgrade()
    audit.record(audit.SIGN_IN, "cy", "account", "cy")
    database.execute_sql(f"DELETE FROM {AuditEntry._meta.table_name} WHERE id >= {marker.id}")

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code != 0
    assert f"Audit chain broken at entry {first.id}" in result.output
    assert "no keyed entry follows them" in result.output


def test_init_on_a_database_from_before_keying_adds_the_key_id_and_closes_the_legacy_segment(app, runner):
    table = AuditEntry._meta.table_name
    migrate(SchemaMigrator.from_database(database.obj).drop_column(table, "key_id"))
    SchemaVersion.delete().where(SchemaVersion.version == 23).execute()
    previous = audit.GENESIS_HASH
    for actor in ("ann", "bob"):
        entry = AuditEntry(sys_id=new_sys_id(), created_at=utcnow(), actor=actor, action=audit.SIGN_IN,
                           object_type="account", object_id=actor, detail={}, previous_hash=previous, key_id=None)
        entry.entry_hash = previous = audit.compute_hash(audit.entry_fields(entry))
        # The columns the table had then: no key_id.
        AuditEntry.insert({getattr(AuditEntry, name): getattr(entry, name) for name in (
            *audit.HASHED_FIELDS, "entry_hash")}).execute()

    result = runner.invoke(args=["init"])

    assert result.exit_code == 0, result.output
    assert "Applied migration: audit entries signed with a key kept outside the database" in result.output
    marker = AuditEntry.get(AuditEntry.action == audit.CHAIN_KEYED)
    assert marker.previous_hash == previous and marker.detail["legacy_entries"] == 2
    verified = runner.invoke(args=["audit", "verify"])
    assert verified.exit_code == 0, verified.output
    assert "before keying (unsigned): 2 entries" in verified.output
