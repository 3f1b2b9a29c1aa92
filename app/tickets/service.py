"""Creating tickets from EPM requests and recording EPM's finalized decisions.

Callers hold the write transaction: intake creates the incoming-request row, the
ticket and its notes together, so a delivery is stored with all its effects or not
at all.
"""
from app import contract, events
from app.audit import service as audit
from app.errors import NotFound
from app.models import AdminTicket, ApplicationAccessTicket, Configuration, JIT_MODELS, Task, WorkNote, utcnow
from app.tickets.numbers import allocate_number

SYSTEM_AUTHOR = "system"


def add_work_note(task, text, author=SYSTEM_AUTHOR, system=True):
    return WorkNote.create(task=task, text=text, author=author, system=system)


def find_task(number):
    """The ticket numbered `number` (any letter case); NotFound when there is none."""
    task = Task.get_or_none(Task.number == number.upper())
    if task is None:
        raise NotFound(f"No ticket {number}")
    return task


def find_jit_request(kind, request_id):
    return JIT_MODELS[kind].get_or_none(JIT_MODELS[kind].request_id == request_id)


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


def create_ticket(event, fields):
    """Create the task and its JIT record for a created event; returns the task."""
    configuration = Configuration.default()
    ticket_type = contract.find_ticket_type(configuration.ticket_type) or contract.INCIDENT
    columns = _application_columns(fields) if event.kind == contract.KIND_APPLICATION else _admin_columns(fields)
    task = Task.create(
        sys_class_name=ticket_type.table,
        number=allocate_number(ticket_type),
        state=ticket_type.new_state,
        short_description=_short_description(configuration, event.kind, columns),
        assignment_group=configuration.default_assignment_group,
        category=configuration.default_category,
        kind=event.kind,
        request_id=fields["request_id"],
        requester=_clip(columns["requester"]),
        host=_clip(columns["host"]),
        subject=_clip(columns["subject"]),
        publisher=_clip(columns["publisher"]),
        requested_duration=_clip(columns["requested_duration"], 32),
    )
    common = dict(
        task=task, request_id=fields["request_id"], tenant_id=_clip(fields.get("tenant_id"), 100),
        epm_ticket_number=_clip(fields.get("epm_ticket_number"), 100), requested_at=fields.get("timestamp"),
        reason=columns["reason"],
    )
    if event.kind == contract.KIND_APPLICATION:
        ApplicationAccessTicket.create(request_info=fields.get("request_info") or {}, **common)
    else:
        AdminTicket.create(
            computer_id=_clip(fields.get("computer_id"), 100), group_id=_clip(fields.get("group_id"), 100),
            user_id=_clip(fields.get("user_id")), user_name=_clip(fields.get("user_name")),
            duration_requested=_clip(fields.get("duration_requested"), 32), **common,
        )
    add_work_note(task, f"{contract.KIND_LABELS[event.kind]} request {fields['request_id']} received from EPM; "
                        f"{ticket_type.label} {task.number} created.")
    # Receivers only queue rows here (notifications, policy evaluations): nothing slow runs
    # inside the transaction.
    events.ticket_created.send(task, configuration=configuration)
    return task


def _clip(value, length=255):
    return None if value is None else value[:length]


def decision_fields(event, fields):
    """The finalized-decision columns an update event carries, by kind."""
    if event.kind == contract.KIND_APPLICATION:
        source = fields.get("request_info") or {}
    else:
        source = fields
    return {
        "final_decision": _clip(source.get("decision"), 32),
        "final_decision_time": source.get("decision_time"),
        "final_decision_by": _clip(source.get("performed_by")),
        "final_duration": _clip(source.get("duration"), 32),
        "final_start_time": fields.get("start_time"),
        "final_end_time": fields.get("end_time"),
    }


def is_same_final_decision(jit, values):
    return jit.decision_final and all(getattr(jit, name) == value for name, value in values.items())


def finalize_decision(jit, event, fields):
    """Record EPM's finalized decision on the ticket; auto-close it when configured."""
    values = decision_fields(event, fields)
    for name, value in values.items():
        setattr(jit, name, value)
    jit.decision_final = True
    jit.updated_at = utcnow()
    jit.save()
    task = jit.task
    window = ""
    if values["final_start_time"] and values["final_end_time"]:
        window = f", from {values['final_start_time']:%Y-%m-%d %H:%M:%S} to {values['final_end_time']:%Y-%m-%d %H:%M:%S} UTC"
    add_work_note(task, f"EPM finalized the decision: {values['final_decision'] or 'unknown'} by "
                        f"{values['final_decision_by'] or 'unknown'}, duration {values['final_duration'] or 'not given'}"
                        f"{window}.")
    configuration = Configuration.default()
    task.updated_at = utcnow()
    closed_from = None
    if configuration.auto_close and task.state != task.ticket_type.closed_state:
        closed_from = task.state_label
        task.state = task.ticket_type.closed_state
        task.closed_at = utcnow()
        add_work_note(task, f"Closed automatically ({task.ticket_type.state_label(task.state)}) "
                            "because EPM finalized the decision and auto-close is on.")
    task.save()
    if closed_from is not None:
        audit.record(audit.STATE_CHANGE, audit.SYSTEM_ACTOR, "ticket", task.number,
                     {"old": closed_from, "new": task.state_label, "why": "auto-close after EPM's final decision"})
    return task
