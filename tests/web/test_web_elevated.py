"""The "Elevated now" page: the Admin Access sessions running now, with user, machine, approver and end time,
each linking to its ticket; a session ended, revoked, not yet started or denied is not listed."""
import re
from datetime import timedelta

import pytest

from app.models import AdminTicket, utcnow
from tests import factories

PAGE = "/elevated"
EMPTY = "Nobody is elevated now"


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def admin_session(make_ticket, deliver):
    """An Admin Access ticket EPM finalized with `decision` for the window `start`..`end`; returns the ticket."""

    def make(user="CORP\\akowalski", computer="WS-0042", start=None, end=None, decision="Approved", by="jchen"):
        now = utcnow()
        start = start if start is not None else now - timedelta(minutes=10)
        end = end if end is not None else now + timedelta(minutes=20)
        task = make_ticket(factories.admin_request(UserName=user, ComputerId=computer))
        finalize(deliver, task, start=start, end=end, decision=decision, by=by)
        return task

    return make


def finalize(deliver, task, start, end, decision="Approved", by="jchen"):
    """EPM's update event for `task`: its decision and session window."""
    answer = deliver(factories.admin_decision(task.request_id, StartTime=iso(start), EndTime=iso(end),
                                              Decision=decision, DecisionPerformedByUser=by,
                                              DecisionTime=iso(utcnow())))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    jit = AdminTicket.get(AdminTicket.task == task)
    assert (jit.final_decision, jit.final_end_time) == (decision, end.replace(microsecond=0))


def rows(page):
    return re.findall(r"<tr>\s*<th scope=\"row\">.*?</tr>", page, re.S)


def test_a_running_session_is_listed_with_user_machine_approver_and_end(as_approver, admin_session):
    end = (utcnow() + timedelta(minutes=20)).replace(microsecond=0)
    task = admin_session(user="CORP\\akowalski", computer="WS-0042", end=end, by="mnovak")

    page = as_approver.get(PAGE).get_data(as_text=True)

    [row] = rows(page)
    assert f'<a href="/tickets/{task.number}">{task.number}</a>' in row
    assert "CORP\\akowalski" in row and "WS-0042" in row and "mnovak" in row
    assert f"{end.isoformat(' ')} UTC" in row
    assert re.search(r'data-label="Time left">(19|20) min', row)
    assert EMPTY not in page


def test_nobody_elevated_shows_the_empty_state(as_approver):
    page = as_approver.get(PAGE).get_data(as_text=True)

    assert EMPTY in page
    assert rows(page) == []


def test_a_session_that_ended_is_not_listed(as_approver, admin_session):
    admin_session(start=utcnow() - timedelta(hours=2), end=utcnow() - timedelta(hours=1))

    assert EMPTY in as_approver.get(PAGE).get_data(as_text=True)


def test_a_session_not_started_yet_is_not_listed(as_approver, admin_session):
    admin_session(start=utcnow() + timedelta(minutes=5), end=utcnow() + timedelta(minutes=35))

    assert EMPTY in as_approver.get(PAGE).get_data(as_text=True)


def test_a_denied_request_is_not_listed(as_approver, admin_session):
    admin_session(decision="Denied")

    assert EMPTY in as_approver.get(PAGE).get_data(as_text=True)


def test_a_session_revoked_after_approval_leaves_the_page(as_approver, admin_session, deliver):
    start, end = utcnow() - timedelta(minutes=10), utcnow() + timedelta(minutes=20)
    task = admin_session(start=start, end=end)

    finalize(deliver, task, start=start, end=end, decision="Denied", by="secops-lead")

    assert EMPTY in as_approver.get(PAGE).get_data(as_text=True)


def test_a_session_ended_early_leaves_the_page(as_approver, admin_session, deliver):
    start = utcnow() - timedelta(minutes=10)
    task = admin_session(start=start, end=utcnow() + timedelta(minutes=20))

    finalize(deliver, task, start=start, end=utcnow() - timedelta(minutes=1))

    assert EMPTY in as_approver.get(PAGE).get_data(as_text=True)


def test_sessions_ending_soonest_come_first(as_approver, admin_session):
    later = admin_session(user="CORP\\later", end=utcnow() + timedelta(hours=2))
    sooner = admin_session(user="CORP\\sooner", end=utcnow() + timedelta(minutes=5))

    listed = [re.search(r"/tickets/(\w+)", row).group(1) for row in rows(as_approver.get(PAGE).get_data(as_text=True))]

    assert listed == [sooner.number, later.number]


def test_approvers_and_admins_find_the_page_in_the_main_navigation(as_approver):
    page = as_approver.get("/tickets").get_data(as_text=True)

    assert f'<a href="{PAGE}"' in page
    assert 'aria-current="page">Elevated now</a>' in as_approver.get(PAGE).get_data(as_text=True)


def test_admins_open_the_page(as_admin):
    assert as_admin.get(PAGE).status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(client):
    answer = client.get(PAGE)

    assert answer.status_code == 302
    assert "/sign-in" in answer.headers["Location"]
