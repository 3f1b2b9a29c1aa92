"""Step-up for admin elevation: which approvals need a fresh authentication at the identity provider.

An Admin Access approval grants local administrator rights. When the approver's account signs in
through the provider, the broker records it only right after the provider authenticated the
person again (no older than `[oidc] step_up_max_age`): the browser sends the person to the
provider for that (app/web/oidc.py). Every other door (the JSON decision API, chat) cannot do so
and answers such an approval with a link to the ticket page instead of recording it.
"""
import time

from app import contract

MSG_STEP_UP_ELSEWHERE = ("An Admin Access approval by an account that signs in through the identity provider needs a "
                         "fresh sign-in: approve it on the ticket page")


def approval_needs_step_up(account, task):
    """True when an approval of `task` by `account` may be recorded only after a fresh provider authentication."""
    return account.signs_in_with_provider and task.kind == contract.KIND_ADMIN


def is_fresh(auth_time, max_age, now=None):
    """Whether a provider authentication at `auth_time` (seconds since the epoch, or None: unknown) is recent enough.
    A `max_age` of 0 asks for a fresh authentication before every such approval."""
    if not isinstance(auth_time, (int, float)) or max_age <= 0:
        return False
    return (time.time() if now is None else now) - auth_time <= max_age
