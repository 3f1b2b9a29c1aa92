"""Applying the ordered rules to a new ticket, and explaining the outcome in one work note on it.

The first enabled, matching rule with a final outcome decides (exempt, auto-deny, two approvers, auto-approve);
a rule in dry run only records what it would have done. Decisions go through decide() as the system identity."""
import logging
from dataclasses import dataclass, field

from app import contract
from app.decisions import service as decisions
from app.errors import BrokerError
from app.fields import clipped
from app.db import write_transaction
from app.models import Task, utcnow
from app.policies import bypass
from app.policies.identity import system_account
from app.policies.matching import RequestFacts, find_reference, glob_matches, rule_matches
from app.policies.models import (
    OUTCOME_AUTO_DENY, OUTCOME_EXEMPT, OUTCOME_REQUIRE_TICKET, OUTCOME_TWO_APPROVERS,
    PATTERN_SERVICENOW, PolicyRule, PolicySettings,
)
from app.policies.validation import granted_minutes, quoted, shown_reference, validate_reference
from app.tickets import decidable, service as tickets

log = logging.getLogger(__name__)

APPROVE = "approve"
DENY = "deny"
TWO_APPROVERS = "two_approvers"
EXEMPT = "exempt"
CONTINUE = "continue"

_WOULD = {APPROVE: "approved", DENY: "denied", TWO_APPROVERS: "required two approvers", EXEMPT: "exempted",
          CONTINUE: "let the request through to the next rule"}


@dataclass
class Verdict:
    """What one rule makes of one request, and why."""

    action: str
    why: str
    reason: str = ""          # the reason EPM receives with a decision
    minutes: int = None       # approvals only
    code: object = None       # the bypass code the approval relies on


@dataclass
class Report:
    """The outcome of one evaluation: a summary, the lines of the work note, what approvers must do."""

    outcome: str = "no rule matched; left to approvers"
    lines: list = field(default_factory=list)
    required_approvals: int = 1
    decision: object = None
    steps: list = field(default_factory=list)
    claimed_code: object = None
    # (code, rule): the bypass code a "requires a ticket reference" rule let the request through on, not yet counted:
    # it is counted with the decision that follows (in its transaction), or when the request is left to approvers.
    gate: tuple = None
    # Whether evaluate()'s `finish` ended the evaluation (with the work note, and the decision if any, in one
    # transaction).
    finished: bool = False


def _label(rule):
    return f"Rule {rule.position} {quoted(rule.name)}"


def _missing_reference_reason(rule):
    if rule.deny_reason:
        return rule.deny_reason
    example = " (e.g. CHG0001234)" if rule.reference_pattern == PATTERN_SERVICENOW else ""
    return f"A ticket reference is required: quote an approved change or request number{example} in the reason"


def _code_text(code):
    return f"failsafe bypass code …{code.hint}"


def judge(rule, facts, now, claimed_code=None):
    """The rule's verdict on a request it matches; `claimed_code`, a bypass code an earlier rule of this
    evaluation used or let the request through on, still counts."""
    if rule.outcome == OUTCOME_EXEMPT:
        return Verdict(EXEMPT, "the request is exempt from later rules and left to approvers")
    if rule.outcome == OUTCOME_AUTO_DENY:
        return Verdict(DENY, "the rule denies every request it matches",
                       reason=rule.deny_reason or f"Denied by policy rule {quoted(rule.name)}")
    if rule.outcome == OUTCOME_TWO_APPROVERS:
        return Verdict(TWO_APPROVERS, "two different approvers, neither of them the requester, must approve")

    reference = find_reference(rule, facts.reason)
    shown = shown_reference(reference)
    code = claimed_code or bypass.valid_code_in(facts.reason)
    if rule.outcome == OUTCOME_REQUIRE_TICKET:
        if reference:
            return Verdict(CONTINUE, f"the reason quotes {shown}")
        if code is not None:
            return Verdict(CONTINUE, f"the reason quotes a valid {_code_text(code)}", code=code)
        return Verdict(DENY, "the reason quotes no ticket reference and no valid bypass code",
                       reason=_missing_reference_reason(rule))

    # OUTCOME_AUTO_APPROVE
    if code is not None:
        minutes = granted_minutes(rule, None, now, until=code.expires_at)
        return Verdict(APPROVE, f"the reason quotes a valid {_code_text(code)}, which counts as a valid ticket; "
                                f"approved for {minutes} minutes",
                       reason=f"Approved automatically by policy rule {quoted(rule.name)}: {_code_text(code)}",
                       minutes=minutes, code=code)
    if not reference:
        return _not_valid(rule, "the reason quotes no ticket reference")
    result = validate_reference(rule, facts, reference, now)
    if not result.ok:
        passed = f" (passed: {'; '.join(result.passed)})" if result.passed else ""
        return _not_valid(rule, f"{shown} is not valid: {result.failed}{passed}")
    checks = "; ".join(f"✓ {line}" for line in result.passed) or "no checks are switched on"
    return Verdict(APPROVE, f"{shown} is valid. Checks passed: {checks}. Approved for {result.duration_minutes} "
                            f"minutes (the smaller of the rule's {rule.max_duration_minutes}-minute maximum and "
                            "the time left in the ticket's window)",
                   reason=f"Approved automatically by policy rule {quoted(rule.name)}: {shown} is valid",
                   minutes=result.duration_minutes)


def _reason_to_send(reason):
    """`reason` within the reason limit EPM and the decision form share, cut short with "…" when over it
    (fields.clipped), with no space left before the "…"."""
    reason = reason.strip()
    sent = clipped(reason, contract.MAX_REASON_LENGTH)
    return sent if sent == reason else sent[:-1].rstrip() + sent[-1]


def _not_valid(rule, why):
    if rule.deny_on_failure:
        return Verdict(DENY, why, reason=rule.deny_reason or f"Denied by policy rule {quoted(rule.name)}: {why}")
    return Verdict(CONTINUE, why)


def _is_exempt(settings, facts):
    return next((pattern for pattern in settings.exempt_patterns if glob_matches(pattern, facts.user)), None)


def evaluate(task, ticket_url="", finish=None):
    """Apply the rules to `task` (a new ticket) and act on the outcome; returns a Report.

    `finish(report)`, if given, ends the evaluation in the transaction that writes its work note (report.finished
    then says so): the one that takes a rule's decision and counts the bypass codes it relies on, or, when no rule
    decides (the request is left to approvers), the one that counts the code a "requires a ticket reference" rule
    let the request through on. A process stopping in between leaves none of them, so the evaluation run again
    counts each code once, and takes, or keeps as its outcome, the decision the rules made. `finish` may refuse to
    end the evaluation by raising (a later attempt claimed it meanwhile): that transaction is rolled back, so none of
    them is stored, and the exception leaves evaluate() unhandled."""
    settings = PolicySettings.current()
    rules = [rule for rule in PolicyRule.ordered() if rule.enabled]
    report = Report()
    if not rules:
        report.outcome = "no rules"
        return report
    facts = RequestFacts.from_task(task)
    exempt_by = _is_exempt(settings, facts)
    if exempt_by:
        report.outcome = "requester exempt; left to approvers"
        report.lines.append(f"The requester {quoted(facts.user)} is on the exempt list ({quoted(exempt_by)}): "
                            "no rule applies; the request is left to approvers.")
        return _leave_to_approvers(task, settings, report, ticket_url, finish)

    now = utcnow()
    report.claimed_code = report.gate = None
    for rule in rules:
        if not rule_matches(rule, facts):
            report.steps.append({"rule": rule.name, "matched": False})
            continue
        verdict = judge(rule, facts, now, _held_code(report))
        report.steps.append({"rule": rule.name, "matched": True, "verdict": verdict.action,
                             "dry_run": bool(settings.dry_run or rule.dry_run)})
        if settings.dry_run or rule.dry_run:
            scope = "global dry run" if settings.dry_run else "dry run"
            report.lines.append(f"[{scope}] {_label(rule)} matched and would have {_WOULD[verdict.action]}: "
                                f"{verdict.why}.")
            continue
        if verdict.action == CONTINUE:
            report.lines.append(f"{_label(rule)} matched: {verdict.why}; the next rule decides.")
            if verdict.code is not None and not _held(report, verdict.code):
                report.gate = (verdict.code, rule)  # counted with what the next rules do, not before
            continue
        return _act(task, settings, rule, verdict, report, ticket_url, finish)
    return _leave_to_approvers(task, settings, report, ticket_url, finish,
                               last_line="No rule decided; the request is left to approvers.")


class _CodeNotUsable(Exception):
    """The bypass code a decision relies on stopped being usable before the decision was stored."""

    def __init__(self, code):
        super().__init__(code.hint)
        self.code = code


def _held_code(report):
    """The bypass code this evaluation relies on so far (counted, or waiting at a gate to be), or None."""
    return report.claimed_code or (report.gate[0] if report.gate else None)


def _held(report, code):
    held = _held_code(report)
    return held is not None and held.id == code.id


def _leave_to_approvers(task, settings, report, ticket_url, finish, last_line=None):
    """End an evaluation no rule decided: the request is left to approvers. The bypass code a "requires a ticket
    reference" rule let it through on is counted, the work note written and the evaluation ended (`finish`) in one
    transaction, holding the ticket's lock as decide() does, so no decision slips in between. Should the ticket
    take no decision any more, or the code have stopped being valid (the gate then denies), the evaluation ends
    that way instead, with the code unused."""
    gate, report.gate = report.gate, None
    with write_transaction():
        refused = used = None
        if gate is not None:
            code, rule = gate
            locked = decisions.lock_task(task)
            refused = decidable.refusal(locked)
            used = refused is None and bypass.use_code(code, system_account(), locked, rule)
            if used:
                report.claimed_code = code
                report.lines.append(f"The {_code_text(code)} was used (audited).")
        if gate is None or used:
            if last_line:
                report.lines.append(last_line)
            _note(task, settings, report)
            if finish is not None:
                finish(report)
                report.finished = True
            return report
    if refused is not None:
        return _no_longer_decidable(task, settings, report, refused[0], code, finish)
    report.lines.append(f"The {_code_text(code)} stopped being valid before it could be used.")
    return _finish_denied_gate(task, settings, rule, report, ticket_url, finish)


def _no_longer_decidable(task, settings, report, refused, code=None, finish=None):
    report.outcome = f"no rule decided: the request can no longer take a decision ({refused})"
    unused = f"; the {_code_text(code)} was not used" if code is not None else ""
    report.lines.append(f"No rule decided: the request can no longer take a decision ({refused}){unused}.")
    return _end(task, settings, report, finish)


def _end(task, settings, report, finish, *texts):
    """Write the work note, then each of `texts` as a note of its own, and end the evaluation (`finish`), in one
    transaction: a process stopping in between leaves none of them, and the evaluation runs again."""
    with write_transaction():
        _note(task, settings, report)
        for text in texts:
            tickets.add_work_note(task, text, author=settings.system_account)
        if finish is not None:
            finish(report)
    report.finished = finish is not None
    return report


def _finish_denied_gate(task, settings, rule, report, ticket_url, finish=None):
    verdict = Verdict(DENY, "the bypass code was no longer valid", reason=_missing_reference_reason(rule))
    return _act(task, settings, rule, verdict, report, ticket_url, finish)


def _act(task, settings, rule, verdict, report, ticket_url, finish=None):
    if verdict.action == EXEMPT:
        report.outcome = f"exempt by {_label(rule)}"
        report.lines.append(f"{_label(rule)} matched: {verdict.why}.")
    elif verdict.action == TWO_APPROVERS:
        report.outcome = f"two approvers required by {_label(rule)}"
        report.required_approvals = 2
        report.lines.append(f"{_label(rule)} matched: {verdict.why}.")
    else:
        return _decide(task, settings, rule, verdict, report, ticket_url, finish)
    return _leave_to_approvers(task, settings, report, ticket_url, finish)


def _in_decision(uses, settings, report, finish):
    """What decide() runs in the decision's transaction: one use of each (code, rule) in `uses`, the work note
    (saying so), and the evaluation's end (`finish`)."""
    def within(locked):
        for code, rule in uses:
            if not bypass.use_code(code, system_account(), locked, rule):
                raise _CodeNotUsable(code)
            report.lines.append(f"The {_code_text(code)} was used (audited).")
        _note(locked, settings, report)
        if finish is not None:
            finish(report)
    return within


def _decide(task, settings, rule, verdict, report, ticket_url, finish=None):
    """Take the verdict's decision as the system identity. The bypass codes it relies on (the one a "requires a
    ticket reference" rule let the request through on, the one an approval quotes) are counted in the decision's
    transaction, with the work note saying so and the evaluation's end (`finish`): the decision, the uses, the note
    and the evaluation's outcome are stored together, or none."""
    decision = contract.DECISION_APPROVED if verdict.action == APPROVE else contract.DECISION_DENIED
    uses = [report.gate] if report.gate is not None else []
    if verdict.action == APPROVE and verdict.code is not None and not _held(report, verdict.code):
        uses.append((verdict.code, rule))
    earlier = list(report.lines)
    report.lines.append(f"{_label(rule)} matched and {_WOULD[verdict.action]} the request automatically: "
                        f"{verdict.why}.")
    report.outcome = f"{decision.lower()} by {_label(rule)}"
    try:
        report.decision = decisions.decide(
            task, system_account(), decision, _reason_to_send(verdict.reason),
            contract.DURATION_MINUTES if decision == contract.DECISION_APPROVED else None,
            verdict.minutes if decision == contract.DECISION_APPROVED else None, ticket_url,
            within=_in_decision(uses, settings, report, finish))
    except _CodeNotUsable as stopped:
        report.lines = earlier + [f"The {_code_text(stopped.code)} stopped being valid before it could be used."]
        if report.gate is not None and report.gate[0].id == stopped.code.id:
            # The request got past the gate on this code alone: without it, the gate denies.
            gate_rule, report.gate = report.gate[1], None
            return _finish_denied_gate(task, settings, gate_rule, report, ticket_url, finish)
        report.outcome = "left to approvers"
        report.lines.append("No rule decided; the request is left to approvers.")
        return _end(task, settings, report, finish)
    except BrokerError as error:
        report.outcome = f"{_label(rule)} could not {verdict.action}: {error.message}"
        unused = "".join(f" The {_code_text(code)} was not used." for code, _rule in uses)
        refused = decidable.refusal(Task.get_by_id(task.id))
        if refused is not None:  # a person's decision, or the request's end, came first: nobody is left to act
            text = f"The policy decision could not be taken: {refused[0]}.{unused}"
        else:
            text = (f"The policy decision could not be taken: {error.message}.{unused} "
                    "The request is left to approvers.")
        report.lines = earlier + [f"{_label(rule)} matched and would have {_WOULD[verdict.action]} the request: "
                                  f"{verdict.why}."]
        return _end(task, settings, report, finish, text)
    report.finished = finish is not None
    if uses:
        report.claimed_code, report.gate = uses[-1][0], None
    report.lines = []
    return report


def _note(task, settings, report):
    if report.lines:
        tickets.add_work_note(task, "Policy evaluation:\n" + "\n".join(f"- {line}" for line in report.lines),
                              author=settings.system_account)
