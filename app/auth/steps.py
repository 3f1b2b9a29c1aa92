"""What a signed-in person must do before anything else, checked on every page and API call.

An account whose password an admin set must choose its own (ASVS: no shared initial secrets);
with `[accounts] require_mfa_for_admins`, an admin without a second factor must enrol one.
The checks are separate functions so that a sign-in which brings its own assurance (an
identity provider's, with its own MFA and no local password) can skip them: pass
`assured_by_idp=True`.
"""
from flask import current_app

from app import contract
from app.auth import two_factor

CHANGE_PASSWORD = "change_password"
ENROL_SECOND_FACTOR = "enrol_second_factor"

# What a session that still owes a step is told when it calls the JSON API.
STEP_MESSAGES = {
    CHANGE_PASSWORD: "Change the password an admin set for this account first (Account page in the browser)",
    ENROL_SECOND_FACTOR: "Admins sign in with a second factor: enrol one first (Account page in the browser)",
}
MSG_BASIC_WITH_SECOND_FACTOR = ("This account signs in with a second factor, which HTTP Basic cannot carry: "
                                "use the browser")


def owes_password_change(account):
    """True while a person's account still has the password an admin set."""
    return account.role in contract.APPROVER_ROLES and account.must_change_password


def needs_second_factor(account):
    """True when this person must sign in with a second factor: they enrolled one, or they are an admin
    and the settings require it of admins. The identity provider's accounts get theirs from the provider."""
    if account.role not in contract.APPROVER_ROLES or account.signs_in_with_provider:
        return False
    required = account.role == contract.ROLE_ADMIN and current_app.extensions["settings"].require_mfa_for_admins
    return required or two_factor.is_enabled(account)


def owes_second_factor(account):
    """True for an admin the settings require a second factor of, who has none yet."""
    return needs_second_factor(account) and not two_factor.is_enabled(account)


def outstanding_step(account, assured_by_idp=False):
    """The step this person must take before anything else, or None."""
    if owes_password_change(account):
        return CHANGE_PASSWORD
    if not assured_by_idp and owes_second_factor(account):
        return ENROL_SECOND_FACTOR
    return None


def basic_refusal(account):
    """Why HTTP Basic (a password alone) may not act for `account`, or None: a step it owes, or a second
    factor Basic cannot carry. The `api` and `reader` accounts are machines and owe nothing."""
    step = outstanding_step(account)
    if step is not None:
        return STEP_MESSAGES[step]
    if needs_second_factor(account):
        return MSG_BASIC_WITH_SECOND_FACTOR
    return None
