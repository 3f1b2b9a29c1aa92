"""Accounts of the organisation's OpenID Connect provider: which role its claims give, and the account they sign in.

An account is the provider's (`iss`, `sub`) pair, never a user name: a local account of the same
name is never taken over, and a person renamed at the provider keeps their account. The role comes
from the groups (or app roles) claim at every sign-in and every re-check, admin winning over
approver; a person in none of the groups has no access and gets no account. Such an account never
has a local password (`NO_PASSWORD` matches none), so only the provider can vouch for it.
"""
import re
from urllib.parse import urlsplit

from app import contract
from app.audit import service as audit
from app.db import write_transaction
from app.errors import Forbidden
from app.models import Account, utcnow

# Audit actions of provider sign-ins (besides audit.SIGN_IN and audit.SIGN_OUT).
SIGN_IN_DENIED = "sign_in_denied"
ROLE_FROM_PROVIDER = "role_from_identity_provider"
STEP_UP = "step_up"
ACCESS_ENDED = "identity_provider_access_ended"

# werkzeug reads a stored hash without "$" as no match: no password ever opens this account.
NO_PASSWORD = "!identity-provider"

MSG_NO_ACCESS = "You are not in a group that may use JIT Broker"
# What a user name may not hold (app/auth/accounts.validate_username): blanks and ':'.
_NOT_IN_NAMES = re.compile(r"[\s:]+")


class NoAccess(Forbidden):
    """A person the provider vouches for, in none of the groups the broker admits."""


def split_list(text):
    """The names in a comma-separated setting, blanks dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def scope_list(settings):
    """The scopes to ask for: the setting split on blanks or commas, `openid` always among them."""
    scopes = [part for part in re.split(r"[\s,]+", settings.oidc_scopes) if part]
    return scopes if "openid" in scopes else ["openid", *scopes]


def button_label(settings):
    """What follows "Sign in with" on the sign-in page: the setting, else the issuer's host name."""
    return settings.oidc_button_label or urlsplit(settings.oidc_issuer).hostname or settings.oidc_issuer


def claimed_groups(claims, claim_name):
    """The groups a claim lists: a JSON list, or one string (some providers send a lone group so), as text."""
    value = claims.get(claim_name)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return set()
    return {str(item).strip() for item in value if isinstance(item, (str, int)) and str(item).strip()}


def role_for_claims(claims, settings):
    """`admin` when a group in the claims is an admin group, else `user` for an approver group, else None."""
    groups = claimed_groups(claims, settings.oidc_roles_claim)
    if groups & set(split_list(settings.oidc_admin_groups)):
        return contract.ROLE_ADMIN
    if groups & set(split_list(settings.oidc_approver_groups)):
        return contract.ROLE_USER
    return None


def display_name(claims, settings):
    """The person's name on pages: the username claim, else the e-mail, else the subject; usable as a user name."""
    for name in (settings.oidc_username_claim, "preferred_username", "email", "sub"):
        value = claims.get(name)
        if isinstance(value, str) and _NOT_IN_NAMES.sub("", value):
            return _NOT_IN_NAMES.sub("_", value.strip())[:120]
    return "provider-user"


def _free_username(name, issuer):
    """`name`, or when an account holds it already `name@<issuer host>` (then a number): a local account of that
    name keeps it. The @host suffix keeps self-approval matching by name (contract.user_key drops it)."""
    if Account.by_username(name) is None:
        return name
    host = (urlsplit(issuer).hostname or "idp")[:25]
    candidate = f"{name}@{host}"
    number = 2
    while Account.by_username(candidate) is not None:
        candidate, number = f"{name}@{host}~{number}", number + 1
    return candidate


def find_account(issuer, subject):
    return Account.get_or_none(Account.idp_issuer == issuer, Account.idp_subject == subject)


def sign_in_account(claims, settings):
    """The account the provider's verified ID token claims sign in, created on first sign-in, its role and e-mail
    taken from the claims; NoAccess (recorded in the audit log, no account created) for a person in none of the
    groups or an account an admin deactivated."""
    issuer, subject = claims["iss"], claims["sub"]
    role = role_for_claims(claims, settings)
    name = display_name(claims, settings)
    # An address the provider says it has not verified names nobody: Slack maps people by it (app/chat/slack.py).
    verified = claims.get("email_verified") is not False and str(claims.get("email_verified")).lower() != "false"
    email = claims.get("email") if isinstance(claims.get("email"), str) and verified else ""
    account = find_account(issuer, subject)
    if role is None or (account is not None and not account.active):
        # Recorded on its own: nothing else is written for a refused sign-in.
        reason = "in none of the admin or approver groups" if role is None else "account deactivated"
        audit.record(SIGN_IN_DENIED, account or name, "account", name,
                     {"issuer": issuer, "subject": subject, "reason": reason,
                      "groups": sorted(claimed_groups(claims, settings.oidc_roles_claim))[:50]})
        raise NoAccess(MSG_NO_ACCESS if role is None else "This account is deactivated")
    with write_transaction():
        account = find_account(issuer, subject)
        if account is None:
            account = Account.create(username=_free_username(name, issuer), role=role, password_hash=NO_PASSWORD,
                                     email=email[:254], idp_issuer=issuer, idp_subject=subject)
            audit.record(audit.USER_CREATE, account, "account", account.username,
                         {"role": role, "issuer": issuer, "subject": subject})
            audit.record(ROLE_FROM_PROVIDER, account, "account", account.username, {"role": role, "previous": None})
        elif account.role != role or account.email != email[:254]:
            previous = account.role
            Account.change(account.id, role=role, email=email[:254])
            if previous != role:
                audit.record(ROLE_FROM_PROVIDER, account, "account", account.username,
                             {"role": role, "previous": previous})
            account = Account.get_by_id(account.id)
        audit.record(audit.SIGN_IN, account, "account", account.username, {"via": "identity provider",
                                                                           "issuer": issuer})
    return account


def apply_recheck(account, claims, settings):
    """What a re-check with the provider found: the role its claims give now. True while the account keeps access
    (its role updated, audited, when it moved); False, with every session ended and an audit entry, when not."""
    role = role_for_claims(claims, settings)
    with write_transaction():
        if role is None:
            Account.change(account.id, session_epoch=Account.session_epoch + 1, idp_checked_at=utcnow(),
                           idp_tokens=None)
            audit.record(ACCESS_ENDED, account, "account", account.username,
                         {"reason": "no longer in an admin or approver group"})
            return False
        Account.change(account.id, role=role, idp_checked_at=utcnow())
        if role != account.role:
            audit.record(ROLE_FROM_PROVIDER, account, "account", account.username,
                         {"role": role, "previous": account.role, "at": "re-check"})
            account.role = role
    return True


def end_access(account, reason):
    """End every session of `account` when the provider can no longer vouch for it (refused refresh, no token),
    and forget its tokens: nothing is left for them to re-check."""
    with write_transaction():
        Account.change(account.id, session_epoch=Account.session_epoch + 1, idp_tokens=None)
        audit.record(ACCESS_ENDED, account, "account", account.username, {"reason": reason})
