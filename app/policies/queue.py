"""When policies run: queued with each new ticket, run after the answer.

`ticket_created` queues a PolicyEvaluation row inside the transaction that creates the
ticket and, in a request, asks the WSGI server to run it once the answer has been sent
(`call_on_close`), so EPM's webhook is never kept waiting for an ITSM or for EPM itself,
and an ITSM call never happens inside the intake transaction.
The scheduler's `evaluate_policies` job picks up anything left behind (a process
that stopped first, an evaluation whose claim expired). A policy that fails is
logged and noted on the ticket; it never fails the delivery.
"""
import logging
import traceback
import weakref

from flask import after_this_request, current_app, has_request_context

from app import claims
from app.db import database, write_transaction
from app.models import Task, utcnow
from app.policies import engine
from app.policies.models import (
    EVALUATION_DONE, EVALUATION_ERROR, EVALUATION_PENDING, PolicyEvaluation, PolicyRule, PolicySettings,
)
from app.tickets import decidable, documents, service as tickets

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
    if evaluation is None or not has_request_context():
        return  # the evaluate_policies job runs it
    app, evaluation_id = current_app._get_current_object(), evaluation.id

    @after_this_request
    def _run_after_answer(response):
        response.call_on_close(lambda: run_in_background(app, evaluation_id))
        return response


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
    """Why the rules have nothing to decide on `task`, as (the evaluation's outcome, a work note or None), or None:
    EPM decided first (e.g. a reconciled request), or the ticket takes no decision any more (a person decided
    while the rules waited, the request expired, the ticket was closed)."""
    if task.jit_request.decision_final:
        return "EPM had decided the request; no rule ran.", None
    refused = decidable.refusal(task)
    if refused is not None:
        return (f"The request could no longer take a decision ({refused[0]}); no rule ran.",
                f"No policy rule ran: the request could no longer take a decision ({refused[0]}).")
    return None


def run_evaluation(evaluation_id):
    """Evaluate one queued ticket if this process wins the claim; returns the row re-read, or None."""
    if not claims.claim_attempt(PolicyEvaluation, evaluation_id, CLAIM_SECONDS):
        return None
    evaluation = PolicyEvaluation.get_by_id(evaluation_id)
    task = Task.get_by_id(evaluation.task_id)
    skipped = _why_no_rule_runs(task)
    if skipped is not None:  # nothing left to decide: no rule runs, and no bypass code is spent on it
        outcome, note = skipped
        with write_transaction():
            claims.release(PolicyEvaluation, PolicyEvaluation.id == evaluation_id, status=EVALUATION_DONE,
                           finished_at=utcnow(), outcome=outcome, error=None)
            Task.update(approvals_required=1).where(Task.id == task.id).execute()
            if note:
                tickets.add_work_note(task, note, author=PolicySettings.current().system_account)
        return PolicyEvaluation.get_by_id(evaluation_id)
    try:
        report = engine.evaluate(task, evaluation.ticket_url or documents.ticket_url(task))
    except Exception as error:  # noqa: BLE001 - a broken rule or ITSM must leave the request to approvers
        log.exception("policy evaluation of %s failed", task.number)
        final = evaluation.attempts >= MAX_ATTEMPTS
        with write_transaction():
            claims.release(PolicyEvaluation, PolicyEvaluation.id == evaluation_id,
                           status=EVALUATION_ERROR if final else EVALUATION_PENDING,
                           error=traceback.format_exc(limit=3)[-2000:])
            if final:  # given up: left to approvers, one of them is enough
                Task.update(approvals_required=1).where(Task.id == task.id).execute()
        tickets.add_work_note(task, f"Policy evaluation failed ({error.__class__.__name__}: {error}); "
                                    + ("the request is left to approvers." if final else "it will be retried."))
        return PolicyEvaluation.get_by_id(evaluation_id)
    with write_transaction():
        claims.release(PolicyEvaluation, PolicyEvaluation.id == evaluation_id, status=EVALUATION_DONE,
                       finished_at=utcnow(), outcome=report.outcome[:2000], steps=report.steps, error=None)
        Task.update(approvals_required=report.required_approvals).where(Task.id == task.id).execute()
    return PolicyEvaluation.get_by_id(evaluation_id)


def evaluate_due(limit=50):
    """Run every queued (or abandoned) evaluation; returns how many were tried."""
    due = (PolicyEvaluation.select(PolicyEvaluation.id).where(claims.due(PolicyEvaluation))
           .order_by(PolicyEvaluation.queued_at).limit(limit))
    tried = 0
    for row in list(due):
        run_evaluation(row.id)
        tried += 1
    return tried
