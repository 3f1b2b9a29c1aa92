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


def open_decisions(task_id):
    """The decisions on ticket `task_id` (an id, or Task.id inside a query of tickets) that count as taken: every
    one EPM did not refuse for good (waiting, being sent, delivered). The one definition of "has a decision":
    `refusal` reads it for one ticket, and the queries of tickets (app/tickets/rows.py) read it for many, so the
    two never disagree, whatever decision reads as the latest (a clock running ahead on one host)."""
    return Decision.select().where((Decision.task == task_id) & (Decision.status != contract.DELIVERY_FAILED))


def open_decision(task):
    """The decision `task` has (open_decisions), a delivered one first, else the latest; None when it has none."""
    delivered_first = (Decision.status == contract.DELIVERY_DELIVERED).desc()
    return open_decisions(task.id).order_by(delivered_first, Decision.decided_at.desc(), Decision.id.desc()).first()


_UNREAD = object()


def refusal(task, configuration=None, jit=None, latest=_UNREAD):
    """Why `task` takes no decision now, as (message, detail): it is final, expired or inactive, or has a decision
    on its way to EPM; None when it takes one. `jit`: its JIT record, and `latest`: its latest decision (None for
    none), when the caller has read them (a ticket with none has no decision to read again).

    What the SQL conditions of app/tickets/rows.py (undecided_condition, settled_condition) say of many tickets."""
    if latest is None or (latest is not _UNREAD and latest.status == contract.DELIVERY_DELIVERED):
        taken = latest
    else:
        taken = open_decision(task)
    jit = jit or task.jit_request
    if (taken is not None and taken.status == contract.DELIVERY_DELIVERED) or jit.decision_final:
        return contract.MSG_FINAL, None
    if task.expired_at is not None:
        return MSG_EXPIRED, None
    if not is_active(task, configuration):
        return contract.MSG_INACTIVE, None
    if taken is not None:
        return contract.MSG_DECISION_IN_FLIGHT, f"{taken.decision} by {taken.decided_by}"
    return None


# Why a ticket may take no decision now and one later (a person set it inactive, a decision is on its way to EPM),
# as against for good (final, expired).
PASSING_REFUSALS = (contract.MSG_INACTIVE, contract.MSG_DECISION_IN_FLIGHT)


def waits(task, configuration=None):
    """Whether `task` takes no decision now but may take one later (a PASSING_REFUSALS); False when it takes one
    now, or never will again. What `~rows.waiting_over_condition` says of many tickets."""
    refused = refusal(task, configuration)
    return refused is not None and refused[0] in PASSING_REFUSALS
