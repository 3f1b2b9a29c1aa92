"""Each retention run writes the audit chain's head to the process log (a JSON line on standard output, which a
log shipper carries off the host), so the head can be anchored outside the database."""
import logging

import pytest

from app.audit import service as audit
from app.jobs.retention import purge


@pytest.fixture
def head_lines(caplog):
    """The log lines written so far that give the audit chain's head."""
    caplog.set_level(logging.INFO, logger="app.jobs.retention")

    def lines():
        messages = [record.getMessage() for record in caplog.records if record.levelno == logging.INFO]
        return [message for message in messages if message.startswith("audit chain head")]

    return lines


def test_a_retention_run_logs_the_newest_entry_and_its_hash(app, head_lines):
    audit.record(audit.SIGN_IN, "ann", "account", "ann")
    newest = audit.record(audit.SIGN_OUT, "ann", "account", "ann")

    purge()

    assert head_lines() == [f"audit chain head: entry {newest.id}, hash {newest.entry_hash}, key id {newest.key_id}"]


def test_every_run_logs_the_head_even_when_nothing_was_deleted(app, head_lines):
    purge()
    entry = audit.record(audit.SIGN_IN, "ann", "account", "ann")
    purge()

    lines = head_lines()
    assert lines[0] == "audit chain head: no entries yet"
    assert lines[-1].startswith(f"audit chain head: entry {entry.id}, hash {entry.entry_hash}")


def test_a_dry_run_logs_no_head(app, head_lines):
    audit.record(audit.SIGN_IN, "ann", "account", "ann")

    purge(dry_run=True)

    assert head_lines() == []
