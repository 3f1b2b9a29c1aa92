"""Two-factor sign-in for local accounts: a TOTP app (RFC 6238, pyotp) and ten single-use recovery codes.

The secret is stored encrypted like every stored secret (app/secrets.py). Enrolment keeps a
new secret on the account and turns it on only once the person has typed their current password and a code
from it; the
recovery codes are made then and shown once, stored as HMAC-SHA256 digests keyed with the app's
secret key (a copy of the table alone cannot be searched offline for the ~49-bit codes; codes
stored by earlier versions as plain SHA-256 digests still work, each once). A code is accepted for its
30-second step and the ones either side (clock drift), and never twice: the last step used is
kept, so a code seen over a shoulder or in a proxy log cannot be replayed. Failed codes count
against the account with failed passwords (app/auth/throttle.py), by the caller.
"""
import base64
import hashlib
import hmac
import io
import secrets
import time

import pyotp
import qrcode
import qrcode.image.svg
from flask import current_app

from app.auth.accounts import password_matches
from app.auth.models import RecoveryCode
from app.db import write_transaction
from app.errors import BadRequest, Unauthorized
from app.models import Account, utcnow

ISSUER = "JIT Broker"
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_RECOVERY_HALF = 5  # two halves of 5: ~49 bits a code


def is_enabled(account):
    """True when `account` signs in with a second factor."""
    return account.totp_enabled_at is not None


def pending_secret(account):
    """The secret an enrolment shows: the one waiting for its first code, or a new one kept for that."""
    if is_enabled(account):
        raise BadRequest("Two-factor sign-in is already on; turn it off first to enrol a new app")
    if not account.totp_secret:
        account.totp_secret = pyotp.random_base32()
        Account.change(account.id, totp_secret=account.totp_secret, totp_last_step=0)
    return account.totp_secret


def provisioning_uri(account, secret):
    """The otpauth:// URI an authenticator app reads (from the QR image or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account.username, issuer_name=ISSUER)


def qr_image_data_uri(uri):
    """`uri` as a QR code in an SVG data: URI, made here (nothing leaves the broker for it)."""
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _accept_totp(account, secret, code):
    """True when `code` is the TOTP of a step near now that is newer than the last one used (which it becomes)."""
    code = "".join((code or "").split())
    if not (code.isdigit() and len(code) == 6):
        return False
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(time.time())
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            # One winner per step, across workers: the row moves only if no one used this step or a later one.
            return Account.update(totp_last_step=step).where(
                Account.id == account.id, Account.totp_last_step < step).execute() == 1
    return False


def _digest(code):
    key = b"recovery-code:" + current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, _normalized(code).encode(), hashlib.sha256).hexdigest()


def _unkeyed_digest(code):
    """How earlier versions stored a recovery code: accepted, so codes already handed out keep working."""
    return hashlib.sha256(_normalized(code).encode()).hexdigest()


def _normalized(code):
    return "".join((code or "").lower().split()).replace("-", "")


def _new_recovery_code():
    halves = ("".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_HALF)) for _ in range(2))
    return "-".join(halves)


def _replace_recovery_codes(account):
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    RecoveryCode.delete().where(RecoveryCode.account == account.id).execute()
    RecoveryCode.insert_many([{"account": account.id, "code_digest": _digest(code)} for code in codes]).execute()
    return codes


def enable(account, current_password, code):
    """Turn two-factor sign-in on with the account's current password and the first code from the pending
    secret; returns the recovery codes (to show once). The password keeps a session left open from binding
    someone else's app (and locking the owner out); the caller counts a wrong one with the sign-in failures
    (app/auth/throttle.py). Raises Unauthorized for a wrong password (the code is left unused), BadRequest for
    a wrong code."""
    if is_enabled(account) or not account.totp_secret:
        raise BadRequest("Start the enrolment again: no new app is waiting for its first code")
    if not password_matches(account, current_password or ""):
        raise Unauthorized("The current password is not right")
    if not _accept_totp(account, account.totp_secret, code):
        raise BadRequest("That code is not right: type the 6 digits the app shows now")
    with write_transaction():
        account.totp_enabled_at = utcnow()
        Account.change(account.id, totp_enabled_at=account.totp_enabled_at)
        return _replace_recovery_codes(account)


def verify(account, code):
    """'totp' or 'recovery' when `code` is a current TOTP code or an unused recovery code of `account`
    (a recovery code is used up by this), else None."""
    if not is_enabled(account):
        return None
    if _accept_totp(account, account.totp_secret, code):
        return "totp"
    if len(_normalized(code)) == 2 * _RECOVERY_HALF and RecoveryCode.delete().where(
            RecoveryCode.account == account.id,
            RecoveryCode.code_digest.in_([_digest(code), _unkeyed_digest(code)])).execute() == 1:
        return "recovery"
    return None


def recovery_codes_left(account):
    return RecoveryCode.select().where(RecoveryCode.account == account.id).count()


def turn_off(account):
    """Forget the secret and the recovery codes: the account signs in with its password alone again."""
    with write_transaction():
        Account.change(account.id, totp_secret="", totp_enabled_at=None, totp_last_step=0)
        RecoveryCode.delete().where(RecoveryCode.account == account.id).execute()
