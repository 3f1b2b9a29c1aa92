"""Whether an approval needs a fresh sign-in at the identity provider first (step-up).

Only an account signed in through the identity provider (it has an `idp_subject`) can step up, and only
Admin Access approvals ask for it. Chat approvals ask too: one that needs step-up is taken on the ticket page."""
from app import contract


def approval_needs_step_up(account, task):
    """True when `account` must sign in again at the identity provider before approving `task`."""
    if not getattr(account, "idp_subject", None):
        return False
    return task.kind == contract.KIND_ADMIN
