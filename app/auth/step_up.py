"""Step-up for admin elevation: which approvals need a fresh authentication at the identity provider.

An Admin Access approval grants local administrator rights. When the approver's account signs in
through the provider, the broker records it only right after the provider authenticated the
person again (no older than `[oidc] step_up_max_age`): the browser sends the person to the
provider for that (app/web/oidc.py). Every other door (the JSON decision API, chat) cannot do so
and answers such an approval with a link to the ticket page instead of recording it. The rule itself
is kept where every approval is recorded (app/decisions/approvals.submit_decision, `require_fresh`),
so a door that forgets it still records nothing.
"""
import time

from flask import current_app, has_app_context

from app import contract
from app.errors import Forbidden

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


class StepUpRequired(Forbidden):
    """An approval that needs a fresh provider authentication the caller does not have."""


def require_fresh(account, task, authenticated_at):
    """Raise StepUpRequired unless an approval of `task` by `account` may be recorded with a provider
    authentication at `authenticated_at` (seconds since the epoch; None when the door has none).

    The browser's door holds each approval to `step_up_max_age` and, when that is 0, sends the person to
    the provider for this very approval; the authentication it comes back with is then as old as that trip,
    which may take `sign_in_max_age`. So here an authentication counts within the longer of the two."""
    if not approval_needs_step_up(account, task):
        return
    settings = current_app.extensions["settings"] if has_app_context() else None
    window = max(settings.oidc_step_up_max_age, settings.oidc_sign_in_max_age) if settings else 0
    if not is_fresh(authenticated_at, window):
        raise StepUpRequired(MSG_STEP_UP_ELSEWHERE)
