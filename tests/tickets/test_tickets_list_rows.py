"""List pages read tickets as plain rows: they must say what the ticket says, and their
cursor pages must walk every ticket once, also where tickets share an opening time."""
import re
from datetime import datetime

import pytest

from app.models import Task
from app.tickets.documents import TicketSchema, ticket_summary
from app.tickets.rows import ListedTicket, newest_first, read_rows, row_page
from app.web import ticket_list
from bench import generate

API = "/api/x_bets_pmc_jit/tickets"
SAME_MOMENT = datetime(2025, 3, 1, 9, 30)  # a whole second: stored without a fraction


@pytest.fixture
def tickets_sharing_a_moment(app):
    """20 tickets, ids 6 to 13 all opened at one moment (so only the id orders them)."""
    generate.generate(20)
    Task.update(opened_at=SAME_MOMENT).where(Task.id.between(6, 13)).execute()
    return [task.number for task in newest_first(Task.select())]


def test_a_row_says_what_its_ticket_says(tickets_sharing_a_moment):
    Task.update(closed_at=None, state=99).where(Task.id == 7).execute()  # open, in a state with no label
    tasks = list(newest_first(Task.select()))
    rows = read_rows(newest_first(Task.select()))
    assert [ticket_summary(row) for row in rows] == TicketSchema(many=True).dump(tasks)
    for row, task in zip(rows, tasks):
        assert (row.id, row.opened_at, row.updated_at, row.closed_at) == (
            task.id, task.opened_at, task.updated_at, task.closed_at)
    assert any(row.state_label == "99" for row in rows)


def test_a_listed_ticket_says_what_its_ticket_says(tickets_sharing_a_moment):
    Task.update(state=99, requester=None).where(Task.id == 7).execute()
    tasks = list(newest_first(Task.select()))
    listed = read_rows(newest_first(Task.select()), ListedTicket)
    assert [tuple(row) for row in listed] == [tuple(getattr(task, name) for name in ListedTicket._fields)
                                              for task in tasks]
    assert [row.state_label for row in listed] == [task.state_label for task in tasks]
    assert "99" in [row.state_label for row in listed]


def test_row_pages_walk_older_and_back_newer_through_shared_moments(tickets_sharing_a_moment):
    numbers, after, pages = [], None, []
    while True:
        page = row_page(Task.select(), after=after, size=3)
        pages.append(page)
        numbers += [row.number for row in page.rows]
        if page.older is None:
            break
        after = page.older
    assert numbers == tickets_sharing_a_moment

    back, before = [], pages[-1].newer
    while before:
        page = row_page(Task.select(), before=before, size=3)
        back = [row.number for row in page.rows] + back
        before = page.newer
    assert back == tickets_sharing_a_moment[:len(back)]
    assert len(back) == len(tickets_sharing_a_moment) - len(pages[-1].rows)


def test_api_next_links_walk_tickets_sharing_a_moment_once(client, approver_auth, tickets_sharing_a_moment):
    numbers, url = [], f"{API}?limit=3"
    while url:
        response = client.get(url, headers=approver_auth)
        assert response.status_code == 200
        numbers += [ticket["number"] for ticket in response.json["result"]]
        match = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        url = match and match.group(1)
    assert numbers == tickets_sharing_a_moment


def test_api_list_shows_a_whole_second_opening_time_as_the_schema_does(client, approver_auth,
                                                                       tickets_sharing_a_moment):
    shared = {task.number for task in Task.select().where(Task.opened_at == SAME_MOMENT)}
    tickets = client.get(f"{API}?limit=100", headers=approver_auth).json["result"]
    assert len(shared) == 8
    assert {ticket["opened_at"] for ticket in tickets if ticket["number"] in shared} == {"2025-03-01T09:30:00"}


def test_browser_list_walks_tickets_sharing_a_moment_once(as_approver, tickets_sharing_a_moment, monkeypatch):
    monkeypatch.setattr(ticket_list, "PAGE_SIZE", 3)
    numbers, url = [], "/tickets?decision=all"
    while url:
        page = as_approver.get(url).get_data(as_text=True)
        numbers += re.findall(r'<a href="/tickets/([A-Z]+\d{7})">', page)
        match = re.search(r'href="([^"]+)" rel="next"', page)
        url = match and match.group(1).replace("&amp;", "&")
    assert numbers == tickets_sharing_a_moment
