"""Creating tickets from EPM requests and recording EPM's finalized decisions and its later updates
(revoked, ended early, conflicting: contract/epm.md 5.3), none of which is ever sent back to EPM.

Callers hold the write transaction: intake creates the incoming-request row, the
ticket and its notes together, so a delivery is stored with all its effects or not
at all.
"""
import logging

from app import contract, events
from app.audit import service as audit
from app.db import insert_row_unread, prepared_select, update_row_unread
from app.errors import NotFound
from app.fields import clipped, duration_words
from peewee import SQL

from app.models import CONFIGURATION_VERSION, Configuration, Decision, JIT_MODELS, Task, WorkNote, utcnow
from app.tickets import search
from app.tickets.context import file_hashes
from app.tickets.outcome import JIT_COLUMNS as OUTCOME_INPUTS, update_task
from app.tickets.numbers import insert_numbered_task

log = logging.getLogger(__name__)

SYSTEM_AUTHOR = "system"
AUDIT_EPM_UPDATE = "epm_decision_updated"
AUDIT_EPM_CONFLICT = "epm_decision_conflict"

# What an update event did to its ticket (record_update's answer).
UPDATE_FIRST = "first"          # EPM's first final decision, recorded
UPDATE_NEWER = "newer"          # a later state (revoked, ended early, changed), recorded
UPDATE_OLDER = "older"          # an earlier state after a newer one: noted, changes no decision (older_update_outcome)
UPDATE_DUPLICATE = "duplicate"  # the recorded state again: changes nothing
UPDATE_CONFLICT = "conflict"    # contradicts what EPM acknowledged: noted and warned, the ticket keeps its decision
UPDATE_UNDECIDED = "undecided"  # carries no decision before any did: noted, the ticket still awaits its decision


def add_work_note(task, text, author=SYSTEM_AUTHOR, system=True):
    """A line in the ticket's history, in the caller's transaction; `ticket_changed` tells who shows the ticket
    elsewhere (the Slack message) that it moved."""
    note = insert_row_unread(WorkNote, task=task, text=text, author=author, system=system)
    events.ticket_changed.send(task)
    return note


def find_task(number):
    """The ticket numbered `number` (any letter case); NotFound when there is none."""
    task = Task.get_or_none(Task.number == number.upper())
    if task is None:
        raise NotFound(f"No ticket {number}")
    return task


def find_jit_request(kind, request_id):
    """The JIT record of `request_id` with its task, read in one SELECT with the configuration's version
    (`configuration_version`, for Configuration.as_of), the decision and decider of the broker's latest
    decision EPM acknowledged (`acknowledged_decision`, `acknowledged_by`: None without one), which an
    update event weighs, and the id of a decision still waiting to be sent or being sent (`waiting_decision`:
    None without one), which EPM's final decision settles (events.epm_decision_final); None when there is none."""
    found = prepared_select(("find_jit_request", kind), _jit_request_query(kind), request_id)
    return found[0] if found else None


def _jit_request_query(kind):
    model = JIT_MODELS[kind]

    def build(request_id):
        version = (Configuration.select(SQL(f'"{CONFIGURATION_VERSION}"'))
                   .where(Configuration.name == Configuration.DEFAULT_NAME))
        acknowledged = [_acknowledged_query(Task.id, column).alias(name) for column, name in (
            (Decision.decision, "acknowledged_decision"), (Decision.decided_by, "acknowledged_by"))]
        waiting = (Decision.select(Decision.id).where(
            Decision.task == Task.id, Decision.status.in_((contract.DELIVERY_PENDING, contract.DELIVERY_SENDING)))
            .limit(1))
        return (model.select(model, Task, version.alias("configuration_version"), *acknowledged,
                             waiting.alias("waiting_decision")).join(Task)
                .where(model.request_id == request_id).limit(1))
    return build


def _configuration(jit):
    """The configuration at the version read with `jit` (find_jit_request), or read now."""
    version = getattr(jit, "configuration_version", None)
    return Configuration.default() if version is None else Configuration.as_of(version)


def _application_columns(fields):
    info = fields.get("request_info") or {}
    return {
        "requester": info.get("user"),
        "host": info.get("hostName"),
        "subject": info.get("productName") or info.get("productDescription") or info.get("filePathObjectId")
        or "Application",
        "publisher": info.get("publisher"),
        "requested_duration": None,
        "reason": info.get("reason"),
    }


def _admin_columns(fields):
    return {
        "requester": fields.get("user_name") or fields.get("user_id"),
        "host": fields.get("computer_id"),
        "subject": "Admin access",
        "publisher": None,
        "requested_duration": fields.get("duration_requested"),
        "reason": fields.get("reason"),
    }


def _short_description(configuration, kind, columns):
    if configuration.default_short_description:
        return configuration.default_short_description[:160]
    label = contract.KIND_LABELS[kind]
    who = columns["requester"] or "unknown user"
    what = columns["subject"] if kind == contract.KIND_APPLICATION else "administrative elevation"
    return f"{label}: {who} requests {what}"[:160]


class RenderedTicket:
    """A created event made into the rows of its ticket with one configuration, before any transaction:
    what is left to the write transaction is the number and the INSERTs."""

    def __init__(self, event, fields, configuration):
        self.event, self.configuration = event, configuration
        self.ticket_type = contract.find_ticket_type(configuration.ticket_type) or contract.INCIDENT
        columns = _application_columns(fields) if event.kind == contract.KIND_APPLICATION else _admin_columns(fields)
        self.task = dict(
            sys_class_name=self.ticket_type.table,
            state=self.ticket_type.new_state,
            short_description=_short_description(configuration, event.kind, columns),
            assignment_group=configuration.default_assignment_group,
            category=configuration.default_category,
            kind=event.kind,
            request_id=fields["request_id"],
            requester=_clip(columns["requester"]),
            host=_clip(columns["host"]),
            subject=_clip(columns["subject"]),
            publisher=_clip(columns["publisher"]),
            search_details=search.search_details(columns["reason"], fields.get("request_info")),
            **(file_hashes(fields.get("request_info")) if event.kind == contract.KIND_APPLICATION else {}),
            requested_duration=_clip(columns["requested_duration"], 32),
        )
        self.jit = dict(
            request_id=fields["request_id"], tenant_id=_clip(fields.get("tenant_id"), 100),
            epm_ticket_number=_clip(fields.get("epm_ticket_number"), 100), requested_at=fields.get("timestamp"),
            reason=columns["reason"],
        )
        if event.kind == contract.KIND_APPLICATION:
            self.jit["request_info"] = fields.get("request_info") or {}
        else:
            self.jit.update(
                computer_id=_clip(fields.get("computer_id"), 100), group_id=_clip(fields.get("group_id"), 100),
                user_id=_clip(fields.get("user_id")), user_name=_clip(fields.get("user_name")),
                duration_requested=_clip(fields.get("duration_requested"), 32),
            )
        self.note = (f"{contract.KIND_LABELS[event.kind]} request {fields['request_id']} received from EPM; "
                     f"{self.ticket_type.label} ")


def create_ticket(event, fields, configuration=None, rendered=None):
    """Create the task and its JIT record for a created event, one INSERT per table; returns the task.

    `rendered` (render_ticket's, made before the transaction) is used when it was made with `configuration`."""
    configuration = configuration or Configuration.default()
    if rendered is None or rendered.configuration is not configuration:
        rendered = RenderedTicket(event, fields, configuration)
    task = insert_numbered_task(rendered.ticket_type, **rendered.task)
    insert_row_unread(JIT_MODELS[event.kind], task=task, **rendered.jit)
    add_work_note(task, f"{rendered.note}{task.number} created.")
    # Receivers only queue rows here (notifications, policy evaluations): nothing slow runs
    # inside the transaction.
    events.ticket_created.send(task, configuration=configuration)
    return task


def _clip(value, length=255):
    return None if value is None else value[:length]


# The JIT record's columns an update event fills (read_update).
DECISION_COLUMNS = ("final_decision", "final_decision_time", "final_decision_by", "final_duration",
                    "final_start_time", "final_end_time")


def _decided(event, fields):
    """Where an update event of its kind carries its decision, decider and duration."""
    return (fields.get("request_info") or {}) if event.kind == contract.KIND_APPLICATION else fields


def read_update(event, fields):
    """(decision columns, unreadable text) of an update event, its Decision text read once. The columns are the
    finalized-decision ones it carries, by kind; their decision is Approved or Denied in the contract's spelling,
    or None: text naming neither (a template's `{decision}`) decides nothing, as an EPM record's unknown status
    does (app/epm/records.StatusMapping), and is the unreadable text (else None)."""
    source = _decided(event, fields)
    text = source.get("decision")
    decision = contract.find_decision(text)
    values = {
        "final_decision": decision,
        "final_decision_time": source.get("decision_time"),
        "final_decision_by": _clip(source.get("performed_by")),
        "final_duration": _clip(source.get("duration"), 32),
        "final_start_time": fields.get("start_time"),
        "final_end_time": fields.get("end_time"),
    }
    return values, (text if text is not None and decision is None else None)


# How much of an unreadable Decision text notes, the log and the processing history show.
UNREADABLE_SHOWN = 100


def shown_decision(text):
    """An unreadable Decision text (read_update's) as it is shown: up to UNREADABLE_SHOWN characters,
    "…" ending one cut short."""
    return clipped(text, UNREADABLE_SHOWN)


def _is(decision, expected):
    """EPM's decision text compared without regard to letter case; None is no decision."""
    return decision is not None and decision.casefold() == expected.casefold()


def compare_states(new, recorded):
    """1 when the decision columns `new` are a later state than `recorded`, -1 an earlier one, 0 when no time tells.

    States are ordered by DecisionTime, then EndTime, then arrival (0 here: the one arriving later is newer).
    A time missing on either side is unknown and tells nothing: a decision reconciled from EPM's list may lack
    the decision time its late webhook carries. For one DecisionTime, an EndTime earlier than the recorded one
    is the later state: EPM only ever ends a session early (End Session, contract/epm.md 5.3), it never
    lengthens one."""
    for name, later_is_newer in (("final_decision_time", True), ("final_end_time", False)):
        mine, theirs = new.get(name), recorded.get(name)
        if mine is not None and theirs is not None and mine != theirs:
            return 1 if (mine > theirs) == later_is_newer else -1
    return 0


def is_same_state(new, recorded):
    """A true duplicate: the same decision, and no known DecisionTime or EndTime tells the two apart."""
    decision, kept = new.get("final_decision") or "", recorded.get("final_decision") or ""
    return decision.casefold() == kept.casefold() and compare_states(new, recorded) == 0


def _recorded_state(jit):
    return {name: getattr(jit, name) for name in DECISION_COLUMNS}


def _recorded_conflict(jit):
    return {"final_decision": jit.conflict_decision, "final_decision_time": jit.conflict_decision_time,
            "final_end_time": jit.conflict_end_time}


def acknowledged_decision(jit):
    """The broker's latest decision on `jit`'s ticket that EPM acknowledged (delivered), or None: as read with
    the record (find_jit_request), its decision and decider, or read now."""
    if hasattr(jit, "acknowledged_decision"):
        if jit.acknowledged_decision is None:
            return None
        return Decision(decision=jit.acknowledged_decision, decided_by=jit.acknowledged_by)
    found = prepared_select("acknowledged_decision", _acknowledged_query, jit.task_id)
    return found[0] if found else None


def _acknowledged_query(task_id, *columns):
    return (Decision.select(*columns).where(Decision.task == task_id, Decision.status == contract.DELIVERY_DELIVERED)
            .order_by(Decision.delivered_at.desc(), Decision.id.desc()).limit(1))


def finalize_decision(jit, event, fields):
    """Record an update event from EPM on the ticket (see record_update); returns the task."""
    return record_update(jit, event, fields)[0]


def record_update(jit, event, fields):
    """Apply an update event to its ticket by contract/epm.md 5.3; returns (task, UPDATE_* for what it did).

    The first final decision is recorded as EPM sent it (and may auto-close the ticket); an approval contradicting
    the broker's denial EPM acknowledged is a conflict, and a denial after its acknowledged approval reads
    Revoked (Admin Access). An update before it that carries no decision (none, empty, an unreplaced
    placeholder: contract/epm.md 1, 5.4, or text naming neither Approved nor Denied: 3, 5.8) decides nothing: it is
    noted and the ticket awaits its decision as before. After the first final decision, an update
    is a true duplicate (changes nothing), an older state re-sent (noted, changes nothing), a conflict (noted,
    warned, the ticket keeps its decision) or a newer state (recorded: revoked, ended early, changed, or the same
    decision naming the decider the ticket lacked).
    Nothing here sends anything to EPM: these are EPM's own decisions. With the first final decision, a decision
    of the broker's still waiting in the outbox is settled by EPM's (events.epm_decision_final)."""
    values, unreadable = read_update(event, fields)
    if unreadable is not None:
        # A template's typo, never EPM's decision: read as none, and told to ops, who can mend the template.
        log.warning("EPM's update for ticket %s (RequestId %s) says Decision %r, neither Approved nor Denied: "
                    "read as no decision", jit.task.number, jit.request_id, shown_decision(unreadable))
    if jit.conflict_decision is not None and is_same_state(values, _recorded_conflict(jit)):
        return jit.task, UPDATE_DUPLICATE
    if not jit.decision_final:
        if values["final_decision"] is None:
            _note_undecided(jit, values, unreadable)
            return jit.task, UPDATE_UNDECIDED
        acknowledged = acknowledged_decision(jit)
        effect, outcome = first_update(event.kind, values, acknowledged)
        if effect == UPDATE_CONFLICT:
            _keep_acknowledged(jit, acknowledged)
            _record_conflict(jit, values, f"the Denied decision by {acknowledged.decided_by} that EPM acknowledged")
            return jit.task, UPDATE_CONFLICT
        _finalize_first(jit, values, epm_outcome=outcome)
        if outcome == contract.EPM_OUTCOME_REVOKED:
            add_work_note(jit.task, f"EPM revoked the approval by {acknowledged.decided_by} it had acknowledged: "
                                    f"Denied by {_who(values)} at {_when(values['final_decision_time'])}. "
                                    "Nothing is sent to EPM for it.")
        # A decision of the broker's still queued for EPM is settled by EPM's: never sent after it.
        events.epm_decision_final.send(jit)
        return jit.task, UPDATE_FIRST
    values, effect = later_update(jit, values)
    if effect == UPDATE_OLDER:
        _apply_older(jit, event.kind, values)
    elif effect == UPDATE_CONFLICT:
        _record_conflict(jit, values, "EPM's final decision Denied")
    elif effect == UPDATE_NEWER:
        _apply_newer(jit, event.kind, values)
    return jit.task, effect


def first_update(kind, values, acknowledged):
    """(UPDATE_FIRST or UPDATE_CONFLICT, EPM outcome): what EPM's first update with a decision, its decision columns
    `values`, does to a ticket whose decision by the broker EPM acknowledged is `acknowledged` (a Decision, or None).

    An approval contradicting the acknowledged denial is a conflict (the ticket keeps Denied). A denial after the
    acknowledged approval is that approval revoked in EPM (Admin Access; EPM's own update for the approval was lost
    or is late). Anything else is recorded as EPM sent it."""
    decision = acknowledged.decision if acknowledged is not None else None
    if _is(decision, contract.DECISION_DENIED) and _is(values["final_decision"], contract.DECISION_APPROVED):
        return UPDATE_CONFLICT, None
    if (kind == contract.KIND_ADMIN and _is(decision, contract.DECISION_APPROVED)
            and _is(values["final_decision"], contract.DECISION_DENIED)):
        return UPDATE_FIRST, contract.EPM_OUTCOME_REVOKED
    return UPDATE_FIRST, None


def later_update(jit, values):
    """(values, UPDATE_*): what the decision columns `values` of an update would do to a ticket whose EPM decision is
    final, changing nothing (later_state on the ticket's recorded columns)."""
    return later_state(_recorded_state(jit), values)


def later_state(recorded, values):
    """(values, UPDATE_*): what the decision columns `values` of an update do to the final decision columns
    `recorded`. For the same decision, what the update leaves out (a template without EndTime, say) is what
    `recorded` holds; a different decision keeps its own unknowns (a revocation read from EPM's record has no
    decision time, and must not show the approval's)."""
    # An update without a decision (empty, or its placeholder unreplaced: no value) cannot change the decision:
    # it is the recorded one, as told by the values it does carry (an End Session's earlier EndTime, say).
    if values["final_decision"] is None or \
            values["final_decision"].casefold() == (recorded["final_decision"] or "").casefold():
        values = {name: recorded[name] if value is None else value for name, value in values.items()}
    if is_same_state(values, recorded):
        # The same state naming who decided or when where the ticket does not (EPM's record, read by reconciliation
        # or after a 409, names no decider; a template's placeholder may come back unreplaced; an Admin Access
        # approval may come before its session's times) is no duplicate (contract/epm.md 5.3): it is recorded as a
        # newer update is, and what the ticket lacked is filled in, once. Naming another decider, it tells of
        # another decision of that value, not of this one (EPM's own Denied after the broker's denial the ticket
        # kept over EPM's approval: _keep_acknowledged), and fills in nothing.
        decider = recorded["final_decision_by"]
        if (decider is None or decider.casefold() == (values["final_decision_by"] or "").casefold()) and any(
                recorded[name] is None and values[name] is not None
                for name in ("final_decision_by", "final_decision_time", "final_start_time", "final_end_time")):
            return values, UPDATE_NEWER
        return values, UPDATE_DUPLICATE
    if compare_states(values, recorded) < 0:
        return values, UPDATE_OLDER
    if _is(values["final_decision"], contract.DECISION_APPROVED) and _is(recorded["final_decision"],
                                                                         contract.DECISION_DENIED):
        return values, UPDATE_CONFLICT
    return values, UPDATE_NEWER


def later_effect(jit, event, fields):
    """What the update (event, fields) would do to `jit`'s final ticket, changing nothing: UPDATE_NEWER,
    UPDATE_CONFLICT, UPDATE_OLDER when it tells what the newer state was (older_update_outcome: the ticket
    would read Revoked, Ended early or Changed), or None when it changes nothing (the state the ticket holds,
    or an older one telling nothing new). A decision read from EPM's record is applied by this rule, the
    webhook's, and read again it adds no note."""
    values, effect = later_update(jit, read_update(event, fields)[0])
    if effect == UPDATE_DUPLICATE or (effect == UPDATE_OLDER and older_update_outcome(
            event.kind, values, _recorded_state(jit), jit.epm_outcome) == jit.epm_outcome):
        return None
    return effect


def _when(moment):
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment else "an unknown time"


def _who(values):
    return values["final_decision_by"] or "unknown"


def _store(jit, values, touch_task=True, **columns):
    """Write `values` and `columns` on the JIT record, and on its task the updated_at and, when they change what
    the ticket's outcome says, the outcome columns (unless the caller saves the task: _finalize_first)."""
    changed = {**values, **columns}
    for name, value in changed.items():
        setattr(jit, name, value)
    jit.updated_at = utcnow()
    # Sent with the transaction's next statement: nothing reads how many rows changed.
    update_row_unread(type(jit), jit.id, updated_at=jit.updated_at, **changed)
    if touch_task:
        if set(changed) & set(OUTCOME_INPUTS):
            update_task(jit, updated_at=utcnow())
        else:
            update_row_unread(Task, jit.task_id, updated_at=utcnow())


def _finalize_first(jit, values, **columns):
    """Record EPM's first final decision (and any other `columns`); auto-close the ticket when configured."""
    _store(jit, values, touch_task=False, decision_final=True, **columns)
    task = jit.task
    window = ""
    if values["final_start_time"] and values["final_end_time"]:
        window = (f", from {values['final_start_time']:%Y-%m-%d %H:%M:%S} "
                  f"to {values['final_end_time']:%Y-%m-%d %H:%M:%S} UTC")
    duration = duration_words(values["final_duration"]) or "not given"
    add_work_note(task, f"EPM finalized the decision: {values['final_decision'] or 'unknown'} by "
                        f"{values['final_decision_by'] or 'unknown'}, duration {duration}{window}.")
    configuration = _configuration(jit)
    task.updated_at = utcnow()
    closed_from = None
    if configuration.auto_close and task.state != task.ticket_type.closed_state:
        closed_from = task.state_label
        task.state = task.ticket_type.closed_state
        task.closed_at = utcnow()
        add_work_note(task, f"Closed automatically ({task.ticket_type.state_label(task.state)}) "
                            "because EPM finalized the decision and auto-close is on.")
    update_task(jit, updated_at=task.updated_at, state=task.state, closed_at=task.closed_at)
    if closed_from is not None:
        audit.record(audit.STATE_CHANGE, audit.SYSTEM_ACTOR, "ticket", task.number,
                     {"old": closed_from, "new": task.state_label, "why": "auto-close after EPM's final decision"})


def later_outcome(kind, recorded, values, outcome):
    """What a newer update makes of the final decision: an EPM_OUTCOME_*, or `outcome` (the one recorded) unchanged.

    Revoked applies to Admin Access only: Application Access has no revocation in any source, so an
    Application update from Approved to Denied is recorded as the newer decision and reads "Changed"."""
    before, after = recorded["final_decision"], values["final_decision"]
    if _is(before, contract.DECISION_APPROVED) and _is(after, contract.DECISION_APPROVED):
        ended, planned = values["final_end_time"], recorded["final_end_time"]
        return contract.EPM_OUTCOME_ENDED_EARLY if ended and planned and ended < planned else outcome
    if before is not None and after is not None and before.casefold() != after.casefold():
        if kind == contract.KIND_ADMIN and _is(before, contract.DECISION_APPROVED):
            return contract.EPM_OUTCOME_REVOKED
        return contract.EPM_OUTCOME_CHANGED
    return outcome


def _apply_newer(jit, kind, values):
    recorded = _recorded_state(jit)
    outcome = later_outcome(kind, recorded, values, jit.epm_outcome)
    changed = outcome != jit.epm_outcome
    _store(jit, values, epm_outcome=outcome)
    decision = values["final_decision"] or "unknown"
    if changed and outcome == contract.EPM_OUTCOME_REVOKED:
        text = (f"EPM revoked the approval: Denied by {_who(values)} at {_when(values['final_decision_time'])}; "
                f"the session ended at {_when(values['final_end_time'])}.")
    elif changed and outcome == contract.EPM_OUTCOME_ENDED_EARLY:
        text = (f"EPM ended the session early: it ended at {_when(values['final_end_time'])} instead of "
                f"{_when(recorded['final_end_time'])} (reported by {_who(values)}).")
    elif changed:
        text = (f"EPM changed its final decision from {recorded['final_decision']} to {decision} by {_who(values)} "
                f"at {_when(values['final_decision_time'])}; the newer decision is recorded.")
    else:
        text = (f"EPM updated its final decision: {decision} by {_who(values)} at "
                f"{_when(values['final_decision_time'])}, ending at {_when(values['final_end_time'])}.")
    add_work_note(jit.task, text + " Nothing is sent to EPM for it.")
    audit.record(AUDIT_EPM_UPDATE, audit.SYSTEM_ACTOR, "ticket", jit.task.number,
                 {"request_id": jit.request_id, "outcome": outcome, "old": recorded["final_decision"],
                  "new": values["final_decision"], "decision_time": values["final_decision_time"],
                  "end_time": values["final_end_time"]})


def older_update_outcome(kind, older, recorded, outcome):
    """What an older update tells: the EPM outcome a ticket holding the newer decision columns `recorded` and EPM
    `outcome` reads once the older update `older` arrives after them. It changes no decision, but can tell what
    the newer one was, as the ticket reads when they come in order: an approval arriving after the Denied that
    followed it makes the ticket read Revoked (Admin Access) or Changed (Application Access), the original end
    after an early one Ended early. A denial arriving after a later approval tells nothing (in order, that
    approval is a conflict): `outcome` unchanged. The rule the intake applies and the processing history tells."""
    told = later_outcome(kind, older, recorded, outcome)
    if told in (contract.EPM_OUTCOME_REVOKED, contract.EPM_OUTCOME_ENDED_EARLY) or (
            told == contract.EPM_OUTCOME_CHANGED and _is(older["final_decision"], contract.DECISION_APPROVED)):
        return told
    return outcome


def _apply_older(jit, kind, values):
    """An older update arriving after a newer one: noted, and the ticket reads what it tells (older_update_outcome)."""
    outcome = older_update_outcome(kind, values, _recorded_state(jit), jit.epm_outcome)
    told = outcome != jit.epm_outcome
    if told:
        _store(jit, {}, epm_outcome=outcome)
    _note_older(jit, values, told)


def _note_older(jit, values, told):
    own = f"{values['final_decision'] or 'no decision'} by {_who(values)} at {_when(values['final_decision_time'])}"
    if told:
        add_work_note(jit.task, f"EPM sent an older update ({own}) after the newer one: the ticket now reads "
                                f"{jit.epm_outcome}, as it would have in order. Nothing is sent to EPM for it.")
        return
    kept = jit.epm_outcome or jit.final_decision or "its decision"
    add_work_note(jit.task, f"EPM re-sent an older update ({own}) that changes nothing: the ticket keeps {kept}.")


def _note_undecided(jit, values, unreadable=None):
    """Note an update that decides nothing (`unreadable`: its Decision text naming no decision) on a ticket still
    awaiting EPM's decision; the ticket stays as it was."""
    told = f" (reported by {values['final_decision_by']})" if values["final_decision_by"] else ""
    what = ("without a decision" if unreadable is None
            else f'whose Decision "{shown_decision(unreadable)}" is neither Approved nor Denied')
    add_work_note(jit.task, f"EPM sent an update {what}{told}: the ticket keeps awaiting EPM's "
                            "final decision. Nothing is sent to EPM for it.")
    update_task(jit, updated_at=utcnow())  # the outcome stays what the broker's latest decision says


def _keep_acknowledged(jit, acknowledged):
    """The broker's Denied that EPM acknowledged becomes the ticket's final decision, EPM's first update having
    contradicted it; its time stays unknown, so EPM's own Denied update arriving later is a duplicate of it."""
    _store(jit, {}, decision_final=True, final_decision=contract.DECISION_DENIED,
           final_decision_by=_clip(acknowledged.decided_by))


def _record_conflict(jit, values, contradicted):
    """Keep the ticket's decision, record the contradicting update on it, and tell ops once (a WARNING line)."""
    _store(jit, {}, conflict_decision=values["final_decision"], conflict_decision_time=values["final_decision_time"],
           conflict_end_time=values["final_end_time"], conflict_by=values["final_decision_by"], conflict_at=utcnow())
    task = jit.task
    add_work_note(task, f"Conflict: EPM sent {values['final_decision']} by {_who(values)} at "
                        f"{_when(values['final_decision_time'])}, contradicting {contradicted}. EPM does not do this; "
                        f"the ticket keeps {jit.final_decision}. Check the request in EPM; nothing is sent to EPM.")
    log.warning("EPM decision conflict on ticket %s: RequestId %s, EPM's update says %s, the ticket keeps %s",
                task.number, jit.request_id, values["final_decision"], jit.final_decision)
    audit.record(AUDIT_EPM_CONFLICT, audit.SYSTEM_ACTOR, "ticket", task.number,
                 {"request_id": jit.request_id, "update": values["final_decision"], "kept": jit.final_decision,
                  "decision_time": values["final_decision_time"], "contradicted": contradicted})
