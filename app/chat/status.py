"""What a chat shows of a ticket besides EPM's facts: the policy result, whether it can be decided, and how its
decision has moved (decided by whom, sent to EPM, acknowledged, finalized, revoked, closed)."""
from app import contract
from app.decisions import service as decisions
from app.decisions.approvals import pending_approval
from app.fields import duration_words
from app.errors import Conflict
from app.policies.models import EVALUATION_DONE, EVALUATION_ERROR, EVALUATION_WAITING, PolicyEvaluation
from app.tickets.outcome import undecided_in_time

DELIVERY_WORDS = {
    contract.DELIVERY_PENDING: "waiting to be sent to EPM",
    contract.DELIVERY_SENDING: "being sent to EPM",
    contract.DELIVERY_DELIVERED: "sent to EPM and acknowledged",
    contract.DELIVERY_FAILED: "refused by EPM; it can be decided again",
}
# A refused decision on a ticket whose request EPM decided itself: EPM's decision stands, none is taken again.
REFUSED_AFTER_EPM_DECIDED = "not applied: EPM had already decided the request"
# A refused decision on a request that expired since: nobody decided it again in time, and none is taken now.
REFUSED_THEN_EXPIRED = "refused by EPM"
EXPIRED_LINE = "Expired: no decision in time"
ACTION_VERBS = {contract.DECISION_APPROVED: "Approve", contract.DECISION_DENIED: "Deny"}


def action_label(decision, kind):
    """The button a ticket offers, as on its page: `Approve Application Access`, `Deny Admin Access`."""
    return f"{ACTION_VERBS[decision]} {contract.KIND_LABELS[kind]}"


def policy_result(task):
    """The policies' word on the ticket, in one line."""
    evaluation = PolicyEvaluation.get_or_none(PolicyEvaluation.task == task)
    if evaluation is None:
        result = "No policy rule applies"
    elif evaluation.status in (EVALUATION_DONE, EVALUATION_WAITING):  # waiting: its outcome says for what
        result = evaluation.outcome or "No policy rule matched"
    elif evaluation.status == EVALUATION_ERROR:
        result = "The evaluation failed; left to approvers"
    else:
        result = "Being evaluated"
    if task.approvals_required and task.approvals_required >= 2:
        result += "; two approvers required"
    return result


def refusal(task):
    """Why the ticket takes no decision now (the contract's words: final, inactive, expired, one on its way to
    EPM), or None when it does."""
    try:
        decisions.check_may_decide(task)
    except Conflict as error:
        return error.message
    return None


def progress_lines(task):
    """How the ticket moved, oldest first; empty while it waits for a decision."""
    jit = task.jit_request
    lines = []
    first = pending_approval(task)
    if first is not None:
        lines.append(f"First approval by {first.approver}; a second approver must approve")
    latest = decisions.latest_decision(task)
    if latest is not None:
        duration = ""
        if latest.duration_unit == contract.DURATION_ONCE:
            duration = " (once)"
        elif latest.duration_unit:
            duration = f" ({latest.duration_value} {latest.duration_unit})"
        words = DELIVERY_WORDS.get(latest.status, latest.status)
        if latest.status == contract.DELIVERY_FAILED and jit.decision_final:
            words = REFUSED_AFTER_EPM_DECIDED
        elif undecided_in_time(latest, task.expired_at):
            words = REFUSED_THEN_EXPIRED
        lines.append(f"{latest.decision}{duration} by {latest.decided_by}: {words}")
    if jit.decision_final:
        final = f"EPM finalized: {jit.final_decision or 'unknown'} by {jit.final_decision_by or 'unknown'}"
        if jit.final_duration:
            final += f", {duration_words(jit.final_duration)}"
        lines.append(final)
    if jit.epm_outcome:
        lines.append(f"EPM since: {jit.epm_outcome}")
    if undecided_in_time(latest, task.expired_at):
        lines.append(EXPIRED_LINE)
    if task.closed_at is not None:
        lines.append(f"Ticket {task.state_label}")
    return lines


def is_final(task):
    """Whether the decision is final: EPM acknowledged the broker's decision or sent its own."""
    latest = decisions.latest_decision(task)
    return task.jit_request.decision_final or (latest is not None and latest.status == contract.DELIVERY_DELIVERED)
