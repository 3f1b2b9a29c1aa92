"""When policies run: queued with each new ticket, run after the answer.

`ticket_created` queues a PolicyEvaluation row inside the transaction that creates the
ticket and, in a request, asks the WSGI server to run it once the answer has been sent
(`call_on_close`), so EPM's webhook is never kept waiting for an ITSM or for EPM itself,
and an ITSM call never happens inside the intake transaction.
The scheduler's `evaluate_policies` job picks up anything left behind (a process
that stopped first, an evaluation whose claim expired). A policy that fails is
logged and noted on the ticket; it never fails the delivery.

A ticket that takes no decision when its turn comes only for a while (a person set it inactive, a decision is on
its way to EPM) keeps its evaluation waiting, and nobody may approve it. Once the wait is over: when the ticket
takes a decision again (a person reopens it, EPM refuses that decision for good, the configuration makes its state
active) the evaluation is queued again and its rules apply to it as to a new ticket; when it never will (EPM
acknowledged that decision, or decided itself) the evaluation ends with no rule run, in the transaction that settled
the request when a signal tells of it (events.decision_delivered, epm_decision_final), and Slack and Teams stop
telling approvers it cannot take a decision *now*. Expiry ends no wait: expire_pending (app/jobs/expiry.py) passes
over a ticket that is inactive or has a decision on its way to EPM, as every ticket whose evaluation waits is.
"""
import logging
import traceback
import weakref

from flask import after_this_request, current_app, has_request_context

from app import claims
from app.db import database, write_transaction
from app.models import Configuration, Task, utcnow
from app.policies import engine
from app.policies.models import (
    EVALUATION_DONE, EVALUATION_ERROR, EVALUATION_PENDING, EVALUATION_WAITING, PolicyEvaluation, PolicyRule,
    PolicySettings,
)
from app.tickets import decidable, documents, service as tickets
from app.tickets.rows import waiting_over_condition

log = logging.getLogger(__name__)

# Long enough for several ITSM look-ups and a decision sent to EPM, each with time-outs.
CLAIM_SECONDS = 180
MAX_ATTEMPTS = 3


# (configuration version, whether any rule is enabled), by database: the rules service moves the
# version with every change of a rule (app/policies/rules.py), so the answer holds while the version does.
_rules_enabled = weakref.WeakKeyDictionary()


def any_rule_enabled(configuration=None):
    """Whether any rule is enabled; read once per configuration version when `configuration` carries the
    version it was read at in the caller's transaction (Configuration.as_of), else read now."""
    version = getattr(configuration, "configuration_version", None)
    kept = _rules_enabled.get(database.obj)
    if version is not None and kept is not None and kept[0] == version:
        return kept[1]
    enabled = PolicyRule.select().where(PolicyRule.enabled == True).exists()  # noqa: E712
    if version is not None:
        _rules_enabled[database.obj] = (version, enabled)
    return enabled


def queue_evaluation(task, ticket_url=None, configuration=None):
    """Queue `task` for evaluation when any rule is enabled; returns the row, or None."""
    if not any_rule_enabled(configuration):
        return None
    with write_transaction():
        evaluation = PolicyEvaluation.get_or_none(PolicyEvaluation.task == task)
        if evaluation is None:
            url = ticket_url if ticket_url is not None else documents.ticket_url(task)
            evaluation = PolicyEvaluation.create(task=task, ticket_url=url[:500])
            # Nobody may approve until the rules have said how many approvers it takes.
            Task.update(approvals_required=None).where(Task.id == task.id).execute()
    return evaluation


def queue_new_ticket(task, configuration=None, **_):
    """`ticket_created`'s receiver: queue the new ticket's evaluation and, in a request, run it once
    the answer is sent. Never raises: a problem is logged, and the delivery keeps its answer."""
    try:
        # Its writes in a savepoint: a failure leaves the ticket's intact.
        evaluation = queue_evaluation(task, configuration=configuration)
    except Exception:  # noqa: BLE001 - the webhook's answer must not depend on the policies
        log.exception("could not queue the policy evaluation of %s", task.number)
        return
    if evaluation is not None:
        _run_after_answer(evaluation.id)


def _run_after_answer(evaluation_id):
    """In a request, run the evaluation once the answer is sent; elsewhere the evaluate_policies job runs it."""
    if not has_request_context():
        return
    app = current_app._get_current_object()

    @after_this_request
    def _later(response):
        response.call_on_close(lambda: run_in_background(app, evaluation_id))
        return response


def end_wait_if_over(task):
    """End `task`'s evaluation that waits for it to take a decision, if its wait is over (not decidable.waits), in a
    savepoint of the caller's transaction when there is one: queued again when the ticket takes a decision now
    (its id is returned, to run it), ended with no rule run when it never will again (None, as while it waits)."""
    with write_transaction():
        evaluation = PolicyEvaluation.get_or_none((PolicyEvaluation.task == task.id)
                                                  & (PolicyEvaluation.status == EVALUATION_WAITING))
        if evaluation is None:
            return None
        task = Task.get_by_id(task.id)  # as it is now: the sender's copy may predate a change of state
        skipped = _why_no_rule_runs(task)
        still_waiting = PolicyEvaluation.status == EVALUATION_WAITING
        if skipped is None:
            queued = (PolicyEvaluation
                      .update(status=EVALUATION_PENDING, next_attempt_at=utcnow(), attempts=0, finished_at=None)
                      .where(PolicyEvaluation.id == evaluation.id, still_waiting)
                      .execute())
            return evaluation.id if queued else None
        if skipped[0] == EVALUATION_DONE and PolicyEvaluation.update(
                status=EVALUATION_DONE, finished_at=utcnow(), outcome=skipped[1], error=None).where(
                PolicyEvaluation.id == evaluation.id, still_waiting).execute():
            _record_no_rule_run(task, EVALUATION_DONE, skipped[2])
    return None


def _end_wait_and_run(task):
    """End `task`'s waiting evaluation if its wait is over (end_wait_if_over), and in a request run it once the
    answer is sent when it was queued again. Never raises: a receiver's problem is logged, and the change that sent
    the signal keeps its answer."""
    try:
        # Its writes in a savepoint: a failure leaves the caller's intact (the job's sweep tries again).
        evaluation_id = end_wait_if_over(task)
    except Exception:  # noqa: BLE001 - a state change or a delivery must not depend on the policies
        log.exception("could not end the wait of the policy evaluation of %s", task.number)
        return
    if evaluation_id is not None:
        _run_after_answer(evaluation_id)


def requeue_changed_ticket(task, **_):
    """`ticket_state_changed`'s receiver: a ticket reopened meets the rules it was skipped by; one settled
    meanwhile ends its wait."""
    _end_wait_and_run(task)


def requeue_refused_decision(decision, **_):
    """`decision_delivery_failed`'s receiver: a ticket whose decision EPM refused for good can be decided again, so
    it meets the rules skipped while that decision was on its way."""
    _end_wait_and_run(decision.task)


def end_wait_on_delivered_decision(decision, **_):
    """`decision_delivered`'s receiver: the decision EPM acknowledged settles the request, so rules that waited
    for it to be sent end with none run, in the transaction that marks it delivered."""
    _end_wait_and_run(decision.task)


def end_wait_on_epm_decision(jit, **_):
    """`epm_decision_final`'s receiver: EPM's own final decision (its update webhook, reconciliation, its answer to
    a decision sent from here) settles the request, so rules waiting on its ticket end with none run.

    On the intake's path (a record read with the configuration's version) it reads nothing more while no rule is
    enabled: an evaluation left waiting from when one was ends at the evaluate_policies job's next sweep."""
    version = getattr(jit, "configuration_version", None)
    if version is not None and not any_rule_enabled(Configuration.as_of(version)):
        return
    _end_wait_and_run(jit.task)


def end_waits_over(limit=50):
    """End the waits that ended by a route that sends no signal here (end_wait_if_over): the ticket takes a decision
    again (the configuration's active states changed), or never will (EPM decided while no rule was enabled), or a
    receiver failed; returns how many it found. (Expiry is not such a route: expire_pending passes over the tickets
    whose evaluations wait.)

    The query and the check of each ticket (decidable.waits) read the same definitions (app/tickets/rows.py), so
    no row it finds is left waiting, to be found again ahead of the others at every run."""
    configuration = Configuration.default()
    waiting = (PolicyEvaluation.select(PolicyEvaluation.id, Task).join(Task)
               .where((PolicyEvaluation.status == EVALUATION_WAITING)
                      & waiting_over_condition(configuration.active_state_labels))
               .order_by(PolicyEvaluation.queued_at).limit(limit))
    waiting = list(waiting)
    for row in waiting:
        end_wait_if_over(row.task)
    return len(waiting)


def run_in_background(app, evaluation_id):
    """Run one evaluation in its own app context and connection (after the response, or from a job)."""
    try:
        with app.app_context():
            opened = database.is_closed()
            if opened:
                database.connect()
            try:
                run_evaluation(evaluation_id)
            finally:
                if opened and not database.is_closed():
                    database.close()
    except Exception:  # noqa: BLE001 - runs after the answer was sent: nobody else would see it
        log.exception("policy evaluation %s failed", evaluation_id)


def _why_no_rule_runs(task):
    """Why the rules have nothing to decide on `task` now, as (the evaluation's status, its outcome, a work note or
    None), or None. Done: EPM decided first (e.g. a reconciled request), or the ticket takes no decision any more
    (a person decided while the evaluation was queued, the request expired). Waiting: it takes none for now (a person
    set it inactive, a decision is on its way to EPM), and its rules run when it takes one again."""
    if task.jit_request.decision_final:
        return EVALUATION_DONE, "EPM had decided the request; no rule ran.", None
    refused = decidable.refusal(task)
    if refused is None:
        return None
    if refused[0] in decidable.PASSING_REFUSALS:
        return (EVALUATION_WAITING,
                f"The request cannot take a decision now ({refused[0]}); its rules run when it can take one again.",
                f"No policy rule ran yet: the request cannot take a decision now ({refused[0]}); "
                "the rules run when it can take one again.")
    return (EVALUATION_DONE, f"The request could no longer take a decision ({refused[0]}); no rule ran.",
            f"No policy rule ran: the request could no longer take a decision ({refused[0]}).")


def _record_no_rule_run(task, status, note):
    """On the ticket, what an evaluation that ran no rule (_why_no_rule_runs) leaves: one approver is enough once it
    is done; while it waits nobody approves before the rules have run (should the ticket be reopened just now, the
    evaluate_policies job's sweep queues it again). Its work note, if any."""
    Task.update(approvals_required=1 if status == EVALUATION_DONE else None).where(Task.id == task.id).execute()
    if note:
        tickets.add_work_note(task, note, author=PolicySettings.current().system_account)


class _ClaimLost(Exception):
    """A later attempt claimed the evaluation while this one ran past its claim: what this one would store with the
    evaluation's end is rolled back."""


def _drop_late_outcome(evaluation, task):
    log.info("policy evaluation %s of ticket %s was claimed by a later attempt meanwhile: the outcome of its "
             "attempt %s is dropped", evaluation.id, task.number, evaluation.attempts)


def run_evaluation(evaluation_id):
    """Evaluate one queued ticket if this process wins the claim; returns the row re-read, or None.

    What the run stores with the evaluation's end (its outcome and steps, the approvers it takes, its work note,
    a rule's decision) it stores only while the evaluation is still its attempt's (claims.release_attempt): a run
    that outlived its claim, the evaluation claimed again meanwhile, stores none of it and leaves the evaluation to
    the later attempt."""
    evaluation = claims.claim_attempt(PolicyEvaluation, evaluation_id, CLAIM_SECONDS)
    if evaluation is None:
        return None
    task = Task.get_by_id(evaluation.task_id)
    skipped = _why_no_rule_runs(task)
    if skipped is not None:  # nothing to decide now: no rule runs, and no bypass code is spent on it
        status, outcome, note = skipped
        with write_transaction():
            ended = claims.release_attempt(PolicyEvaluation, evaluation, status=status,
                                           finished_at=utcnow() if status == EVALUATION_DONE else None,
                                           outcome=outcome, error=None)
            if ended:
                _record_no_rule_run(task, status, note)
        if not ended:
            _drop_late_outcome(evaluation, task)
        return PolicyEvaluation.get_by_id(evaluation_id)

    def finish(report):
        """Mark the evaluation done with `report`'s outcome, in the caller's transaction when there is one; _ClaimLost
        when a later attempt claimed it meanwhile, which rolls that transaction back (engine.evaluate's contract)."""
        with write_transaction():
            if not claims.release_attempt(PolicyEvaluation, evaluation, status=EVALUATION_DONE,
                                          finished_at=utcnow(), outcome=report.outcome[:2000], steps=report.steps,
                                          error=None):
                raise _ClaimLost()
            Task.update(approvals_required=report.required_approvals).where(Task.id == task.id).execute()

    try:
        # It ends in the transaction that writes its work note (engine.evaluate's `finish`): with the rule's decision
        # and the bypass codes it counts, or with the code counted for a request left to approvers.
        report = engine.evaluate(task, evaluation.ticket_url or documents.ticket_url(task), finish=finish)
        if not report.finished:
            finish(report)
    except _ClaimLost:
        _drop_late_outcome(evaluation, task)
    except Exception as error:  # noqa: BLE001 - a broken rule or ITSM must leave the request to approvers
        log.exception("policy evaluation of %s failed", task.number)
        _record_error(evaluation, task, error)
    return PolicyEvaluation.get_by_id(evaluation_id)


def _record_error(evaluation, task, error):
    """Store the failed attempt `evaluation` (as claimed): queued again, or given up after MAX_ATTEMPTS and the
    request left to one approver; with a work note saying which."""
    final = evaluation.attempts >= MAX_ATTEMPTS
    with write_transaction():
        # Not once it ended: a rule's decision, stored with its end, failed after (on its way to EPM, where the
        # outbox retries it); the evaluation keeps that outcome, and runs no rule again. Nor once a later attempt
        # claimed it (this one ran past its claim): that attempt's outcome stands.
        if not claims.release_attempt(PolicyEvaluation, evaluation,
                                      status=EVALUATION_ERROR if final else EVALUATION_PENDING,
                                      error=traceback.format_exc(limit=3)[-2000:]):
            now = PolicyEvaluation.get_by_id(evaluation.id)
            if now.claimed_until is not None or now.attempts != evaluation.attempts:
                _drop_late_outcome(evaluation, task)
            return
        if final:  # given up: left to approvers, one of them is enough
            Task.update(approvals_required=1).where(Task.id == task.id).execute()
    tickets.add_work_note(task, f"Policy evaluation failed ({error.__class__.__name__}: {error}); "
                                + ("the request is left to approvers." if final else "it will be retried."))


def evaluate_due(limit=50):
    """Run every queued (or abandoned) evaluation, those whose wait for their ticket is over among them; returns
    how many were tried."""
    end_waits_over(limit)
    due = (PolicyEvaluation.select(PolicyEvaluation.id).where(claims.due(PolicyEvaluation))
           .order_by(PolicyEvaluation.queued_at).limit(limit))
    tried = 0
    for row in list(due):
        run_evaluation(row.id)
        tried += 1
    return tried
