"""What a signed-in person must do before anything else, checked on every page and API call.

An account whose password an admin set must choose its own (ASVS: no shared initial secrets).
The checks are separate functions so that a sign-in which brings its own assurance (an
identity provider's, with its own MFA and no local password) can skip them.
"""
from app import contract

CHANGE_PASSWORD = "change_password"

# What a session that still owes a step is told when it calls the JSON API.
STEP_MESSAGES = {
    CHANGE_PASSWORD: "Change the password an admin set for this account first (Account page in the browser)",
}


def owes_password_change(account):
    """True while a person's account still has the password an admin set."""
    return account.role in contract.APPROVER_ROLES and account.must_change_password


def outstanding_step(account):
    """The step this person must take before anything else, or None."""
    if owes_password_change(account):
        return CHANGE_PASSWORD
    return None
