"""`jitbroker audit verify` finds an edited or deleted entry; concurrent appends keep one chain."""
import threading

from app.audit import service as audit
from app.audit.models import AuditEntry
from app.db import database


def _record_three():
    return [audit.record("sign_in", name, "account", name, source_address="10.0.0.9") for name in ("ann", "bob", "cy")]


def test_an_untouched_chain_verifies(runner, app):
    _record_three()

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "Audit chain intact: 3 entries" in result.output
    assert AuditEntry.select().order_by(AuditEntry.id.desc()).first().entry_hash in result.output


def test_an_empty_log_verifies(runner, app):
    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code == 0
    assert "0 entries" in result.output


def test_each_entry_links_to_the_one_before(app):
    first, second, third = _record_three()

    assert first.previous_hash == audit.GENESIS_HASH
    assert (second.previous_hash, third.previous_hash) == (first.entry_hash, second.entry_hash)


def test_an_edited_entry_is_named(runner, app):
    _first, second, _third = _record_three()
    table = AuditEntry._meta.table_name
    database.execute_sql(f"UPDATE {table} SET actor = 'mallory' WHERE id = {second.id}")

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code != 0
    assert f"Audit chain broken at entry {second.id}" in result.output
    assert "edited" in result.output


def test_an_edited_detail_is_found(app):
    entry = audit.record("configuration_change", "root", "configuration", "Default",
                         {"pmc_host": {"old": "", "new": "acme-services.pm.beyondtrustcloud.com"}})
    table = AuditEntry._meta.table_name
    database.execute_sql(f"UPDATE {table} SET detail = {database.param} WHERE id = {database.param}",
                         ('{"pmc_host": {"new": "evil.example.com", "old": ""}}', entry.id))

    result = audit.verify()

    assert not result.intact and result.bad.position == entry.id


def test_a_deleted_entry_breaks_the_link_of_the_next(runner, app):
    _first, second, third = _record_three()
    database.execute_sql(f"DELETE FROM {AuditEntry._meta.table_name} WHERE id = {second.id}")

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code != 0
    assert f"Audit chain broken at entry {third.id}" in result.output
    assert "deleted" in result.output


def test_an_entry_whose_hash_was_recomputed_without_the_key_is_named(app):
    _first, second, _third = _record_three()
    AuditEntry.update(actor="mallory").where(AuditEntry.id == second.id).execute()
    edited = AuditEntry.get_by_id(second.id)
    AuditEntry.update(entry_hash=audit.compute_hash(audit.signed_fields(edited))).where(
        AuditEntry.id == second.id).execute()

    result = audit.verify()

    assert result.bad.position == second.id
    assert "recomputed without the key" in result.problem


def test_concurrent_appends_form_one_unbroken_chain(app):
    """Two workers appending at once must never both read the same previous hash."""
    errors = []

    def append(worker):
        try:
            with app.app_context(), database.connection_context():
                for number in range(15):
                    audit.record("sign_in", f"worker-{worker}", "account", str(number))
        except Exception as error:  # reported below; a thread cannot fail the test itself
            errors.append(error)

    threads = [threading.Thread(target=append, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    result = audit.verify()
    assert result.intact and result.checked == 60
    assert AuditEntry.select(AuditEntry.previous_hash).distinct().count() == 60
