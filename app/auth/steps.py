"""What a signed-in person must do before anything else, checked on every page and API call.

An account whose password an admin set must choose its own (ASVS: no shared initial secrets);
with `[accounts] require_mfa_for_admins`, an admin without a second factor must enrol one.
The checks are separate functions so that a sign-in which brings its own assurance (an
identity provider's, with its own MFA and no local password) can skip them: pass
`assured_by_idp=True`.

`decider_refusal` is the one rule every door a person acts through applies (the session loader and
pages, HTTP Basic, Slack): deactivated, a local non-admin while local sign-in is for admins only, an
identity provider account the provider no longer vouches for, or a step still owed.
"""
from collections import namedtuple

from flask import current_app

from app import contract
from app.auth import oidc_client, two_factor
from app.models import Configuration

CHANGE_PASSWORD = "change_password"
ENROL_SECOND_FACTOR = "enrol_second_factor"

# What a session that still owes a step is told when it calls the JSON API.
STEP_MESSAGES = {
    CHANGE_PASSWORD: "Change the password an admin set for this account first (Account page in the browser)",
    ENROL_SECOND_FACTOR: "Admins sign in with a second factor: enrol one first (Account page in the browser)",
}
MSG_INACTIVE = "This account is deactivated"
MSG_LOCAL_ADMINS_ONLY = ("Local sign-in is for admins only: this account must sign in through the identity "
                         "provider")
MSG_NOT_VOUCHED = "The identity provider no longer vouches for this account: sign in to the broker again"
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


# Why a person may not act now: `step` names a step they may still take on its page (None when nothing
# they do here helps: their session, if any, is over), `message` says so.
Refusal = namedtuple("Refusal", "message step")


def local_sign_in_refused(account):
    """True for a local non-admin person's account while an issuer is set and local sign-in is for admins
    only. The `api` and `reader` machine accounts and the provider's own accounts are never affected."""
    if account.role != contract.ROLE_USER or account.signs_in_with_provider or oidc_client.client() is None:
        return False
    return Configuration.default().local_sign_in_admins_only


def decider_refusal(account, assured_by_idp=False, may_ask_provider=True):
    """Why `account` may not act through any door (a session, HTTP Basic, Slack) now, as a Refusal; None when
    it may. `may_ask_provider=False` (a page's own polling) never waits for the identity provider's re-check."""
    if not account.active:
        return Refusal(MSG_INACTIVE, None)
    if local_sign_in_refused(account):
        return Refusal(MSG_LOCAL_ADMINS_ONLY, None)
    if not oidc_client.still_vouched_for(account, may_ask=may_ask_provider):
        return Refusal(MSG_NOT_VOUCHED, None)
    step = outstanding_step(account, assured_by_idp=assured_by_idp or account.signs_in_with_provider)
    return Refusal(STEP_MESSAGES[step], step) if step is not None else None


def basic_refusal(account):
    """Why HTTP Basic (a password alone) may not act for `account`, or None: a step it owes, or a second
    factor Basic cannot carry. The `api` and `reader` accounts are machines and owe nothing."""
    refusal = decider_refusal(account)
    if refusal is not None:
        return refusal.message
    if needs_second_factor(account):
        return MSG_BASIC_WITH_SECOND_FACTOR
    return None
