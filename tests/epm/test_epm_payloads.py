"""The decision bodies EPM receives (contract/epm.md §3) and the duration mapping."""
from datetime import datetime, timedelta, timezone

import pytest

from app import contract
from app.epm.payloads import admin_decision_body, application_decision_body, duration_seconds

TICKET = dict(performed_by="jchen", request_id="6b1f3a52-9c1e-4e0b-8a57-2f0c3d9e4a11",
              decision_time=datetime(2026, 11, 20, 14, 20, 44, 912000), reason="VPN update approved",
              sys_id="0123456789abcdef0123456789abcdef", ticket_number="INC0010001",
              ticket_url="https://broker.example.org/tickets/INC0010001")


@pytest.mark.parametrize("unit, value, sent", [
    (contract.DURATION_ONCE, None, "Once"),
    (contract.DURATION_MINUTES, 5, "300"),
    (contract.DURATION_MINUTES, "30", "1800"),
    (contract.DURATION_MINUTES, 1440, "86400"),
    (contract.DURATION_HOURS, 1, "3600"),
    (contract.DURATION_HOURS, 24, "86400"),
])
def test_durations_are_sent_as_once_or_seconds(unit, value, sent):
    assert duration_seconds(unit, value) == sent


def test_an_unknown_duration_unit_is_refused():
    with pytest.raises(ValueError, match="Unknown duration unit 'days'"):
        duration_seconds("days", 2)


def test_an_approved_application_decision_has_every_contract_field():
    body = application_decision_body(decision="Approved", duration="3600", **TICKET)
    assert body == {
        "status": "2000", "decision": "Approved", "decisionPerformedByUser": "jchen", "duration": "3600",
        "itsmRequestId": "6b1f3a52-9c1e-4e0b-8a57-2f0c3d9e4a11", "decisionTime": "2026-11-20 14:20:44",
        "message": "VPN update approved", "systemId": "0123456789abcdef0123456789abcdef",
        "ticketId": "INC0010001", "ticketUrl": "https://broker.example.org/tickets/INC0010001",
    }
    assert list(body) == ["status", "decision", "decisionPerformedByUser", "duration", "itsmRequestId",
                          "decisionTime", "message", "systemId", "ticketId", "ticketUrl"]


def test_a_denied_application_decision_is_status_2001_and_still_has_a_duration():
    body = application_decision_body(decision="Denied", duration=None, **TICKET)
    assert (body["status"], body["decision"], body["duration"]) == ("2001", "Denied", "Once")
    assert all(isinstance(value, str) and value for value in body.values())


def test_the_decision_time_is_sent_in_utc():
    moment = datetime(2026, 11, 20, 16, 20, 44, tzinfo=timezone(timedelta(hours=2)))
    body = application_decision_body(decision="Approved", duration="Once", **dict(TICKET, decision_time=moment))
    assert body["decisionTime"] == "2026-11-20 14:20:44"


def test_an_empty_field_is_refused_rather_than_sent():
    with pytest.raises(ValueError, match="empty: message"):
        application_decision_body(decision="Approved", duration="Once", **dict(TICKET, reason="  "))


def test_an_unknown_decision_is_refused():
    with pytest.raises(ValueError, match="decision must be one of"):
        application_decision_body(decision="Maybe", duration="Once", **TICKET)


def test_an_approved_admin_decision_has_the_admin_fields():
    body = admin_decision_body(decision="Approved", duration="1800", **TICKET)
    assert body == {
        "requestId": "6b1f3a52-9c1e-4e0b-8a57-2f0c3d9e4a11", "decision": "Approved", "duration": "1800",
        "decisionPerformedByUser": "jchen", "message": "VPN update approved",
        "systemId": "0123456789abcdef0123456789abcdef", "ticketId": "INC0010001",
        "ticketUrl": "https://broker.example.org/tickets/INC0010001",
    }


def test_a_denied_admin_decision_leaves_out_the_duration():
    body = admin_decision_body(decision="Denied", duration="1800", **TICKET)
    assert "duration" not in body
    assert body["decision"] == "Denied"


@pytest.mark.parametrize("once_duration, sent", [("Once", "Once"), ("0", "0"), ("", "Once")])
def test_an_admin_approval_once_sends_the_configured_encoding(once_duration, sent):
    body = admin_decision_body(decision="Approved", duration=contract.EPM_DURATION_ONCE,
                               once_duration=once_duration, **TICKET)
    assert body["duration"] == sent
