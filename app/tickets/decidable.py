"""Whether a ticket takes a decision now, and the contract's words when it does not: the rule the decision service
enforces (app/decisions/service.py) and the one a message asking approvers for a decision checks before it goes
(app/notify/service.py)."""
from app import contract
from app.models import Configuration, Decision

MSG_EXPIRED = ("This request expired without a decision: EPM no longer waits for one. "
               "The user can ask again from the endpoint")


def is_active(task, configuration=None):
    """Whether the ticket's state is one of the configured active states (by label)."""
    configuration = configuration or Configuration.default()
    labels = {label.casefold() for label in configuration.active_state_labels}
    return task.state_label.casefold() in labels


def latest_decision(task):
    """The latest decision taken on `task`, or None."""
    return Decision.latest_of(task).first()


_UNREAD = object()


def refusal(task, configuration=None, jit=None, latest=_UNREAD):
    """Why `task` takes no decision now, as (message, detail): it is final, expired or inactive, or has a decision
    on its way to EPM; None when it takes one. `jit`: its JIT record, and `latest`: its latest decision (None for
    none), when the caller has read them."""
    previous = latest_decision(task) if latest is _UNREAD else latest
    jit = jit or task.jit_request
    if (previous is not None and previous.status == contract.DELIVERY_DELIVERED) or jit.decision_final:
        return contract.MSG_FINAL, None
    if task.expired_at is not None:
        return MSG_EXPIRED, None
    if not is_active(task, configuration):
        return contract.MSG_INACTIVE, None
    if previous is not None and previous.is_open:
        return contract.MSG_DECISION_IN_FLIGHT, f"{previous.decision} by {previous.decided_by}"
    return None
