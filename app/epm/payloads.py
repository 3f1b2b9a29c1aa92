"""The JSON bodies of the two decision calls, exactly as contract/epm.md §3 lists them."""
from datetime import timezone

from app import contract

_SECONDS_PER_UNIT = {contract.DURATION_MINUTES: 60, contract.DURATION_HOURS: 3600}


def duration_seconds(unit, value=None):
    """The duration EPM receives: "Once", else N minutes/hours as a string of seconds (ranges are the rules' job)."""
    if unit == contract.DURATION_ONCE:
        return contract.EPM_DURATION_ONCE
    if unit not in _SECONDS_PER_UNIT:
        raise ValueError(f"Unknown duration unit {unit!r}; expected one of "
                         f"{contract.DURATION_ONCE}, {', '.join(_SECONDS_PER_UNIT)}")
    return str(int(value) * _SECONDS_PER_UNIT[unit])


def format_decision_time(moment):
    """`moment` as EPM's decisionTime (UTC, yyyy-MM-dd HH:mm:ss); naive datetimes are taken as UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.strftime(contract.EPM_DECISION_TIME_FORMAT)


def _check_decision(decision):
    if decision not in contract.DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(contract.DECISIONS)}, not {decision!r}")


def _non_empty(body):
    missing = [name for name, value in body.items() if value is None or not str(value).strip()]
    if missing:
        raise ValueError(f"EPM needs every decision field filled in; empty: {', '.join(missing)}")
    return {name: str(value) for name, value in body.items()}


def application_decision_body(*, decision, performed_by, duration, request_id, decision_time, reason, sys_id,
                              ticket_number, ticket_url):
    """The Application Access (URM) decision body; ValueError if any field would be empty.

    A denial sends the duration "Once": EPM expects every field to be a non-empty string."""
    _check_decision(decision)
    approved = decision == contract.DECISION_APPROVED
    return _non_empty({
        "status": contract.EPM_STATUS_APPROVED if approved else contract.EPM_STATUS_DENIED,
        "decision": decision,
        "decisionPerformedByUser": performed_by,
        "duration": duration or contract.EPM_DURATION_ONCE,
        "itsmRequestId": request_id,
        "decisionTime": format_decision_time(decision_time),
        "message": reason,
        "systemId": sys_id,
        "ticketId": ticket_number,
        "ticketUrl": ticket_url,
    })


def admin_decision_body(*, decision, performed_by, duration, request_id, reason, sys_id, ticket_number,
                        ticket_url, decision_time=None, once_duration=contract.EPM_ADMIN_ONCE_DURATION):
    """The Admin Access decision body; ValueError if any field would be empty.

    No duration on a denial; "once" sends `once_duration` (unconfirmed by EPM); `decision_time` is ignored."""
    _check_decision(decision)
    body = {"requestId": request_id, "decision": decision}
    if decision == contract.DECISION_APPROVED:
        once = (duration in (None, "", contract.EPM_DURATION_ONCE))
        body["duration"] = (once_duration or contract.EPM_ADMIN_ONCE_DURATION) if once else duration
    body.update({
        "decisionPerformedByUser": performed_by,
        "message": reason,
        "systemId": sys_id,
        "ticketId": ticket_number,
        "ticketUrl": ticket_url,
    })
    return _non_empty(body)
