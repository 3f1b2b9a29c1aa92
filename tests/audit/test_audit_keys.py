"""The audit key: where it comes from, rotation into a new segment, and a key that is missing or wrong."""
import logging
import stat

import pytest

from app.audit import keys
from app.audit import service as audit
from app.audit.models import AuditEntry
from app.settings import Settings, SettingsError

KEY_A = "a" * 20 + "first-audit-key-0001"
KEY_B = "b" * 20 + "second-audit-key-002"
KEY_C = "c" * 20 + "somebody-elses-key03"


def _settings(current="", previous=()):
    return Settings.load({"audit_key": current, "audit_previous_keys": ",".join(previous)}, environ={})


@pytest.fixture
def use_keys(app, tmp_path):
    """Make the running app sign with `current` and also know `previous`, as a restart with new settings would."""

    def use(current, previous=()):
        app.extensions["audit_keys"] = keys.load(_settings(current, previous), tmp_path)
        return app.extensions["audit_keys"]

    return use


def _record(*actors):
    return [audit.record(audit.SIGN_IN, actor, "account", actor, source_address="10.0.0.9") for actor in actors]


def test_each_entry_names_the_key_that_signed_it_and_never_holds_the_key(use_keys):
    ring = use_keys(KEY_A)

    entry, = _record("ann")

    assert entry.key_id == ring.current_id == keys.key_id(KEY_A)
    stored = AuditEntry.get_by_id(entry.id)
    assert KEY_A not in repr(stored.__data__)
    assert stored.entry_hash != audit.compute_hash(audit.signed_fields(stored))  # not a hash anyone can recompute


def test_a_rotated_key_starts_a_new_segment_that_links_to_the_old_head(use_keys):
    use_keys(KEY_A)
    old = _record("ann", "bob")
    use_keys(KEY_B, previous=[KEY_A])
    new = _record("cy")

    result = audit.verify()

    assert result.intact and result.checked == 3
    assert [(segment.key_id, segment.count) for segment in result.segments] == [
        (keys.key_id(KEY_A), 2), (keys.key_id(KEY_B), 1)]
    assert new[0].previous_hash == old[-1].entry_hash == result.segments[0].head_hash


def test_entries_from_processes_mid_rotation_interleave_and_verify(use_keys):
    """A rolling restart: old and new workers append in turn; every entry verifies under the key it names."""
    for current, previous in ((KEY_A, [KEY_B]), (KEY_B, [KEY_A]), (KEY_A, [KEY_B]), (KEY_B, [KEY_A])):
        use_keys(current, previous)
        _record(current[:3])

    result = audit.verify()

    assert result.intact and result.checked == 4 and len(result.segments) == 4


def test_a_rotated_out_key_left_off_the_previous_keys_fails_verify_naming_it(use_keys, runner):
    use_keys(KEY_A)
    first, = _record("ann")
    use_keys(KEY_B)
    _record("bob")

    result = runner.invoke(args=["audit", "verify"])

    assert result.exit_code != 0
    assert f"Audit chain broken at entry {first.id}" in result.output
    assert f"key id {keys.key_id(KEY_A)}, which is not configured" in result.output


def test_verify_with_the_wrong_key_fails_at_the_first_entry(use_keys):
    use_keys(KEY_A)
    first, _second = _record("ann", "bob")
    use_keys(KEY_C)

    result = audit.verify()

    assert not result.intact and result.bad.position == first.id and result.checked == 0


def test_an_entry_relabelled_with_another_known_key_fails(use_keys):
    use_keys(KEY_A)
    _first, second = _record("ann", "bob")
    use_keys(KEY_A, previous=[KEY_B])
    AuditEntry.update(key_id=keys.key_id(KEY_B)).where(AuditEntry.id == second.id).execute()

    result = audit.verify()

    assert result.bad.position == second.id and "signature" in result.problem


def test_reordered_entries_fail_verify(use_keys):
    use_keys(KEY_A)
    first, second, _third = _record("ann", "bob", "cy")
    columns = ("sys_id", "created_at", "actor", "object_id", "previous_hash", "entry_hash")
    swapped = {entry.id: {name: getattr(entry, name) for name in columns} for entry in (second, first)}
    # Swap the two rows' contents (sys_id and entry_hash are unique: park one aside first).
    AuditEntry.update(sys_id="parked", entry_hash="parked").where(AuditEntry.id == first.id).execute()
    AuditEntry.update(**swapped[first.id]).where(AuditEntry.id == second.id).execute()
    AuditEntry.update(**swapped[second.id]).where(AuditEntry.id == first.id).execute()

    result = audit.verify()

    assert result.bad.position == first.id and "link" in result.problem


def test_without_a_configured_key_one_is_generated_once_and_kept_private(tmp_path, caplog):
    caplog.set_level(logging.WARNING)

    first = keys.load(_settings(), tmp_path)
    second = keys.load(_settings(), tmp_path)

    key_file = tmp_path / keys.KEY_FILE_NAME
    assert first.current_id == second.current_id == keys.key_id(key_file.read_text().strip())
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.generated and str(key_file) in first.source
    generated = [record.getMessage() for record in caplog.records if "generated the audit chain key" in
                 record.getMessage()]
    assert len(generated) == 1 and "JITBROKER_AUDIT_KEY" in generated[0]
    assert key_file.read_text().strip() not in caplog.text


def test_a_configured_key_comes_from_the_environment_before_the_file(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[audit]\nkey = "{KEY_A}"\nprevious_keys = ["{KEY_C}"]\n')

    from_file = Settings.load(environ={"JITBROKER_CONFIG": str(config)})
    from_environment = Settings.load(environ={"JITBROKER_CONFIG": str(config), "JITBROKER_AUDIT_KEY": KEY_B,
                                              "JITBROKER_AUDIT_PREVIOUS_KEYS": f"{KEY_A}, {KEY_C}"})

    assert keys.load(from_file, tmp_path).keys.keys() == {keys.key_id(KEY_A), keys.key_id(KEY_C)}
    ring = keys.load(from_environment, tmp_path)
    assert ring.current_id == keys.key_id(KEY_B) and not ring.generated
    assert ring.keys.keys() == {keys.key_id(KEY_A), keys.key_id(KEY_B), keys.key_id(KEY_C)}
    assert not (tmp_path / keys.KEY_FILE_NAME).exists()


@pytest.mark.parametrize("variable", ["JITBROKER_AUDIT_KEY", "JITBROKER_AUDIT_PREVIOUS_KEYS"])
def test_a_short_audit_key_is_refused_with_a_clear_error(variable):
    with pytest.raises(SettingsError, match="at least 32 characters; one has 6"):
        Settings.load(environ={variable: "short!"})
