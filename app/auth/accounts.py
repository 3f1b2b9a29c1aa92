"""Broker accounts: creation, passwords (werkzeug scrypt) and credential checks."""
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from app import contract
from app.errors import BadRequest, Conflict, Unauthorized
from app.models import Account, utcnow

PASSWORD_METHOD = "scrypt"
MIN_PASSWORD_LENGTH = 12

_dummy_hash = None


def hash_password(password):
    return generate_password_hash(password, method=PASSWORD_METHOD)


def generate_password():
    """A random password for a new account, shown once to whoever created it."""
    return secrets.token_urlsafe(18)


def validate_username(username):
    username = (username or "").strip()
    if not username or len(username) > 150 or any(c.isspace() or c == ":" for c in username):
        raise BadRequest("A user name is 1 to 150 characters without spaces or ':'")
    return username


def validate_password(password):
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"A password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def create_account(username, role, password=None, set_by_admin=True):
    """Create an account; returns (account, password) where password is the one set.

    A person's account (approver or admin) whose password an admin set must change it at its next
    sign-in (app/auth/steps.py); `set_by_admin=False` is for an account nobody signs in to with the
    password made here (the policy engine's system identity)."""
    username = validate_username(username)
    if role not in contract.ROLES:
        raise BadRequest(f"Unknown role {role!r}; choose one of {', '.join(contract.ROLES)}")
    password = validate_password(password) if password is not None else generate_password()
    if Account.by_username(username) is not None:
        raise Conflict(f"An account named {username!r} already exists")
    account = Account.create(username=username, role=role, password_hash=hash_password(password),
                             must_change_password=set_by_admin and role in contract.APPROVER_ROLES)
    return account, password


def set_password(account, password, keep_previous_for=None, set_by_admin=True):
    """Give `account` a new password; the old one stops working at once, or after `keep_previous_for`.

    A password an admin set for a person's account must be changed at its next sign-in; one the person
    chose (`set_by_admin=False`) clears that mark.

    Keeping the previous password (a timedelta) is for the `api` account: EPM's
    webhook credentials can then be changed in EPM after the broker, with both
    passwords accepted meanwhile, so no delivery is refused during the rotation.
    """
    if account.signs_in_with_provider:
        raise BadRequest(f"{account.username} signs in through the identity provider and has no local password")
    new_hash = hash_password(validate_password(password))
    if keep_previous_for and account.role == contract.ROLE_API:
        account.previous_password_hash = account.password_hash
        account.previous_password_expires_at = utcnow() + keep_previous_for
    else:
        account.previous_password_hash = None
        account.previous_password_expires_at = None
    account.password_hash = new_hash
    account.updated_at = utcnow()
    account.session_epoch += 1  # every browser session opened with the old password ends
    account.must_change_password = set_by_admin and account.role in contract.APPROVER_ROLES
    account.save()


def change_own_password(account, current_password, new_password):
    """A person changes their own password: the current one must match, the new one meets the same rules as one
    an admin sets and differs from the current one. Clears the "change at next sign-in" mark.

    The caller counts a wrong current password with the sign-in failures (app/auth/throttle.py)."""
    if not password_matches(account, current_password or ""):
        raise Unauthorized("The current password is not right")
    validate_password(new_password)
    if new_password == current_password:
        raise BadRequest("Choose a new password that differs from the current one")
    set_password(account, new_password, set_by_admin=False)


def password_matches(account, password):
    """Check a password against an account, or burn the same time when there is none.

    Checking a dummy hash for unknown names keeps the answer time from telling an
    attacker which user names exist.
    """
    global _dummy_hash
    if account is None:
        if _dummy_hash is None:
            _dummy_hash = hash_password(secrets.token_hex(16))
        check_password_hash(_dummy_hash, password)
        return False
    return check_password_hash(account.password_hash, password)


def previous_password_matches(account, password):
    """True for the `api` account's previous password while its rotation window is open."""
    if (account is None or account.role != contract.ROLE_API or not account.previous_password_hash
            or account.previous_password_expires_at is None or account.previous_password_expires_at <= utcnow()):
        return False
    return check_password_hash(account.previous_password_hash, password)
