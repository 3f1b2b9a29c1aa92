"""Rewriting the audit log of a running broker, as someone who can write its database but lacks the audit key.

The broker records sign-ins over HTTP. The attacker then edits an entry straight in the database
and recomputes every hash after it the way the unkeyed chain made them (SHA-256 of the entry's
canonical JSON), or rewrites the whole chain as unsigned entries from before keying with one of
them deleted. `jitbroker audit verify`, run as an operator would against that database, must
fail and name the first rewritten entry.
"""
import hashlib
import json
import re
import subprocess
import sys

import pytest
import requests

from app.audit.models import AuditEntry
from tests import factories
from tests.live import ROOT, LiveServer
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
# The fields the unkeyed chain hashed, as the code before keying read them from a row.
OLD_HASHED_FIELDS = ("sys_id", "created_at", "actor", "action", "object_type", "object_id", "source_address",
                     "detail", "previous_hash")
GENESIS_HASH = "0" * 64


@pytest.fixture
def server(app, database_url, admin):
    # The default installation: no audit key configured, so the broker uses the one it generated.
    with LiveServer(database_url, workers=2) as live:
        yield live


def _sign_in(server, username, password):
    browser = requests.Session()
    page = browser.get(f"{server.url}/sign-in", timeout=30).text
    return browser.post(f"{server.url}/sign-in", timeout=30, allow_redirects=False,
                        data={"csrf_token": _TOKEN.search(page).group(1), "username": username, "password": password})


def _audited_actions(server, admin):
    """Two failed guesses and a sign-in, over HTTP; returns the entries they left, oldest first."""
    for _ in range(2):
        assert _sign_in(server, admin.username, "wrong password!").status_code == 401
    assert _sign_in(server, admin.username, factories.PASSWORD).status_code == 302
    wait_until(lambda: AuditEntry.select().count() >= 3, timeout=30, message="the three entries to be recorded")
    return list(AuditEntry.select().order_by(AuditEntry.id))


def _verify(server):
    """`jitbroker audit verify` against the server's database, with the server's environment."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app:create_app()", "audit", "verify"],
                          cwd=ROOT, env=server.env, capture_output=True, text=True, timeout=120)


def _old_hash(row):
    """The unkeyed hash: SHA-256 of the canonical JSON of the entry's fields, as the chain made it before keying."""
    fields = {name: getattr(row, name) for name in OLD_HASHED_FIELDS}
    fields["created_at"] = row.created_at.isoformat(timespec="microseconds") + "Z"
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _rehash_from(position, previous_hash, **values):
    """Rewrite every entry from `position` on: `values` set, each linked to the one before and hashed unkeyed."""
    selected = [getattr(AuditEntry, name) for name in ("id", *OLD_HASHED_FIELDS)]
    for row in AuditEntry.select(*selected).where(AuditEntry.id >= position).order_by(AuditEntry.id):
        for name, value in values.items():
            setattr(row, name, value)
        row.previous_hash = previous_hash
        row.entry_hash = previous_hash = _old_hash(row)
        AuditEntry.update(previous_hash=row.previous_hash, entry_hash=row.entry_hash,
                          **values).where(AuditEntry.id == row.id).execute()


def test_an_entry_rewritten_with_every_hash_recomputed_the_unkeyed_way_fails_verify(server, admin):
    first, *_later = _audited_actions(server, admin)
    assert _verify(server).returncode == 0  # intact before the attack

    # The attacker's own failed guesses become someone else's, and every hash after them is recomputed.
    _rehash_from(first.id, first.previous_hash, actor="jchen", source_address="198.51.100.7")

    done = _verify(server)
    assert done.returncode != 0, done.stdout
    assert f"Audit chain broken at entry {first.id}" in done.stderr
    assert "recomputed without the key" in done.stderr


def test_a_chain_rewritten_as_unsigned_entries_with_one_deleted_fails_verify(server, admin):
    first, second, _sign_in_entry = _audited_actions(server, admin)
    assert _verify(server).returncode == 0

    # Passing every entry off as one from before keying, then dropping the second and relinking the rest.
    AuditEntry.update(key_id=None).execute()
    AuditEntry.delete().where(AuditEntry.id == second.id).execute()
    _rehash_from(first.id, GENESIS_HASH)

    done = _verify(server)
    assert done.returncode != 0, done.stdout
    assert f"Audit chain broken at entry {first.id}" in done.stderr
    assert "carry no key signature" in done.stderr
