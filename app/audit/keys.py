"""The keys that sign the audit chain, kept outside the database.

Each entry is signed with HMAC-SHA256 under the current key and records that key's id (never the
key). Whoever can write the database but lacks the key cannot make an entry that verifies, so
rewriting the log means knowing a secret the database does not hold.

Where the current key comes from, first found wins: `JITBROKER_AUDIT_KEY`, `[audit] key` in the
settings file, or a key generated once into the instance folder (`instance/audit_key`, mode 0600)
so the default installation is keyed from its first entry. Previous keys
(`JITBROKER_AUDIT_PREVIOUS_KEYS` / `[audit] previous_keys`) sign nothing but still verify the
entries they signed: rotating is putting a new key first and the old one among the previous.
"""
import hashlib
import hmac
import logging
from dataclasses import dataclass
from pathlib import Path

from flask import current_app

from app.settings import generated_secret

log = logging.getLogger(__name__)

KEY_FILE_NAME = "audit_key"
# Hex digits of a key id: enough that two keys never share one, short enough to read in a log line.
KEY_ID_LENGTH = 16


def key_id(key):
    """The public name of `key`: derived from it, so an entry's id always names the key that signed it."""
    return hmac.new(key.encode("utf-8"), b"jitbroker audit key id", hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]


@dataclass(frozen=True)
class AuditKeys:
    """The current signing key and every key that may verify, by id; `source` says where the current one came from."""

    current_id: str
    keys: dict
    source: str

    @property
    def generated(self):
        return self.source.startswith("generated")

    def knows(self, identifier):
        return identifier in self.keys

    def sign(self, identifier, message):
        """HMAC-SHA256 (hex) of `message` (bytes) under the key named `identifier`; KeyError when unknown."""
        return hmac.new(self.keys[identifier], message, hashlib.sha256).hexdigest()


def load(settings, instance_path):
    """The audit keys `settings` name, the current one generated into `instance_path` when none is configured."""
    if settings.audit_key:
        current, source = settings.audit_key, "configured (JITBROKER_AUDIT_KEY or [audit] key)"
    else:
        key_file = Path(instance_path) / KEY_FILE_NAME
        created = not key_file.exists()
        current, source = generated_secret(key_file), f"generated, kept in {key_file}"
        if created:
            log.warning("generated the audit chain key in %s: back it up apart from the database, and set the same "
                        "key as JITBROKER_AUDIT_KEY on every host that shares this database", key_file)
    ring = {key_id(key): key.encode("utf-8") for key in settings.audit_previous_key_list}
    current_id = key_id(current)
    ring[current_id] = current.encode("utf-8")
    return AuditKeys(current_id=current_id, keys=ring, source=source)


def init_app(app, settings):
    """Load this process's audit keys once, for `current()`."""
    app.extensions["audit_keys"] = load(settings, app.instance_path)


def current():
    """The audit keys of the running app."""
    return current_app.extensions["audit_keys"]
