"""Secrets at rest: the EPM client secret, the SMTP password and the notification webhook URL are stored
encrypted.

Values are encrypted with Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`)
and stored as `fernet:<token>`. The key comes from the environment:

- `JITBROKER_FERNET_KEY`: one or more Fernet keys, comma-separated (generate one with
  `python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
  The first encrypts; all decrypt, so a key can be rotated by putting the new one first.
- otherwise a key derived from SECRET_KEY (HKDF-SHA256), which every worker already shares.

A stored value without the prefix is a plaintext one from before encryption; it is
read as it is and encrypted by migration 7 (`migrations.encrypt_stored`) or the next save.
"""
import base64
import logging
import os

import peewee
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

PREFIX = "fernet:"
KEY_VARIABLE = "JITBROKER_FERNET_KEY"

_fernet = None


def derived_key(secret_key):
    """A Fernet key derived from the session-signing SECRET_KEY."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"jitbroker", info=b"secrets at rest")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode("utf-8")))


def configure(secret_key, environ=None):
    """Choose the keys for this process: JITBROKER_FERNET_KEY when set, else derived from `secret_key`."""
    global _fernet
    environ = os.environ if environ is None else environ
    configured = [key.strip() for key in environ.get(KEY_VARIABLE, "").split(",") if key.strip()]
    keys = [Fernet(key) for key in configured] or [Fernet(derived_key(secret_key))]
    _fernet = MultiFernet(keys)


def encrypt(plaintext):
    if not plaintext or plaintext.startswith(PREFIX):
        return plaintext
    if _fernet is None:
        raise RuntimeError("secrets.configure() must run before a secret is stored (create_app does it)")
    return PREFIX + _fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(stored):
    if not stored or not stored.startswith(PREFIX):
        return stored
    if _fernet is None:
        raise RuntimeError("secrets.configure() must run before a secret is read (create_app does it)")
    try:
        return _fernet.decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
    except (InvalidToken, ValueError):
        # A changed SECRET_KEY or JITBROKER_FERNET_KEY: the secret is unreadable and
        # must be entered again; never fall back to showing the ciphertext.
        log.error("a stored secret cannot be decrypted with the configured key; enter it again")
        return ""


class EncryptedTextField(peewee.TextField):
    """Text stored encrypted (`fernet:...`), read back as plaintext."""

    def db_value(self, value):
        return super().db_value(encrypt(value) if isinstance(value, str) else value)

    def python_value(self, value):
        return decrypt(super().python_value(value))
