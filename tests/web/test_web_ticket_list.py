"""The ticket list: newest first, its columns, filters, search, keyset pages, escaping."""
import re
from dataclasses import replace
from datetime import timedelta

import pytest

from app import contract
from app.db import database
from app.models import JIT_MODELS, Decision, Task, utcnow
from app.web import ticket_list
from tests import factories


def numbers_on(response):
    return re.findall(r'<a href="/tickets/([A-Z]+\d{7})">', response.get_data(as_text=True))


@pytest.fixture
def three_tickets(make_ticket):
    vpn = make_ticket(factories.application_request(user="CORP\\mrivera", hostName="LT-LIS-0142",
                                                    productName="Example VPN Client", publisher="Example Networks"))
    admin = make_ticket(factories.admin_request(UserName="CORP\\akowalski", ComputerId="PC-ADMIN-7",
                                                DurationRequested="1800"))
    editor = make_ticket(factories.application_request(user="CORP\\tlee", hostName="WS-PRT-0007",
                                                       productName="Notepad Plus", publisher="Don Ho"))
    return vpn, admin, editor


def test_list_is_newest_first_with_every_column(as_approver, three_tickets):
    vpn, admin, editor = three_tickets
    response = as_approver.get("/tickets")
    assert response.status_code == 200
    assert numbers_on(response) == [editor.number, admin.number, vpn.number]
    page = response.get_data(as_text=True)
    for text in ("Application Access", "Admin Access", "CORP\\akowalski", "PC-ADMIN-7", "Example VPN Client",
                 "Admin access", "30 minutes", "New"):
        assert text in page
    assert re.search(r'<time datetime="[^"]+Z"\s+title="[^"]+ UTC">\d+ s</time>', page)


def test_list_filters_by_state(as_approver, three_tickets):
    vpn, _, _ = three_tickets
    vpn.state = contract.INCIDENT.state_value("On Hold")
    vpn.save()
    assert numbers_on(as_approver.get("/tickets?state=On+Hold")) == [vpn.number]
    assert vpn.number not in numbers_on(as_approver.get("/tickets?state=New"))


def test_list_filters_by_kind(as_approver, three_tickets):
    _, admin, _ = three_tickets
    assert numbers_on(as_approver.get(f"/tickets?kind={contract.KIND_ADMIN}")) == [admin.number]


def test_list_filters_by_ticket_type(as_approver, three_tickets):
    _, admin, _ = three_tickets
    Task.update(sys_class_name=contract.CHANGE_REQUEST.table).where(Task.id == admin.id).execute()
    assert numbers_on(as_approver.get("/tickets?decision=all&ticket_type=change_request")) == [admin.number]
    assert admin.number not in numbers_on(as_approver.get("/tickets?decision=all&ticket_type=incident"))


def test_list_filters_by_assignment_group(as_approver, three_tickets):
    vpn, _, _ = three_tickets
    Task.update(assignment_group="Service Desk").where(Task.id == vpn.id).execute()
    response = as_approver.get("/tickets?group=Service+Desk")
    assert numbers_on(response) == [vpn.number]
    assert '<option value="Service Desk" selected>' in response.get_data(as_text=True)


def group_options(response):
    """The assignment groups the filter offers, "Any group" aside."""
    select = response.get_data(as_text=True).split('name="group"')[1].split("</select>")[0]
    return re.findall(r'<option value="([^"]+)" ', select)


def test_list_offers_a_new_assignment_group_once_the_remembered_ones_are_old(app, as_approver, three_tickets):
    vpn, admin, _ = three_tickets
    clock = [1000.0]
    app.extensions["recent_groups"] = ticket_list.RecentGroups(clock=lambda: clock[0])
    Task.update(assignment_group="Service Desk").where(Task.id == vpn.id).execute()
    before = group_options(as_approver.get("/tickets"))
    assert "Service Desk" in before

    Task.update(assignment_group="Finance IT").where(Task.id == admin.id).execute()
    clock[0] += ticket_list.GROUP_CHOICES_SECONDS - 0.5
    assert group_options(as_approver.get("/tickets")) == before  # remembered, not read again
    clock[0] += 1
    assert group_options(as_approver.get("/tickets")) == ticket_list.assignment_groups()
    assert "Finance IT" in ticket_list.assignment_groups()


@pytest.mark.parametrize("query, which", [
    ("LT-LIS", 0),            # host
    ("mrivera", 0),           # user
    ("notepad", 2),           # product, any case
    ("Example Networks", 0),  # publisher
    ("akowalski", 1),
])
def test_list_searches_user_host_product_and_publisher(as_approver, three_tickets, query, which):
    assert numbers_on(as_approver.get("/tickets", query_string={"q": query})) == [three_tickets[which].number]


def test_list_search_by_number(as_approver, three_tickets):
    _, admin, _ = three_tickets
    assert numbers_on(as_approver.get("/tickets", query_string={"q": admin.number.lower()})) == [admin.number]


def test_list_search_treats_wildcards_as_text(as_approver, three_tickets):
    assert numbers_on(as_approver.get("/tickets", query_string={"q": "%"})) == []


def test_list_ignores_unknown_filter_values(as_approver, three_tickets):
    assert len(numbers_on(as_approver.get("/tickets?state=Bogus&kind=nope&ticket_type=x"))) == 3


def test_list_pages_walk_back_and_forth(as_approver, make_ticket, monkeypatch):
    monkeypatch.setattr(ticket_list, "PAGE_SIZE", 2)
    made = [make_ticket(factories.admin_request()).number for _ in range(5)]
    newest_first = list(reversed(made))

    first = as_approver.get("/tickets")
    assert numbers_on(first) == newest_first[:2]
    assert "Newer" not in first.get_data(as_text=True)
    older = re.search(r'href="([^"]+)" rel="next"', first.get_data(as_text=True)).group(1)

    second = as_approver.get(older.replace("&amp;", "&"))
    assert numbers_on(second) == newest_first[2:4]
    third_link = re.search(r'href="([^"]+)" rel="next"', second.get_data(as_text=True)).group(1)
    third = as_approver.get(third_link.replace("&amp;", "&"))
    assert numbers_on(third) == newest_first[4:]
    assert 'rel="next"' not in third.get_data(as_text=True)

    back = re.search(r'href="([^"]+)" rel="prev"', third.get_data(as_text=True)).group(1)
    assert numbers_on(as_approver.get(back.replace("&amp;", "&"))) == newest_first[2:4]


def test_list_pages_keep_the_filters(as_approver, make_ticket, monkeypatch):
    monkeypatch.setattr(ticket_list, "PAGE_SIZE", 1)
    for _ in range(2):
        make_ticket(factories.admin_request())
    make_ticket(factories.application_request())
    first = as_approver.get("/tickets?kind=admin").get_data(as_text=True)
    older = re.search(r'href="([^"]+)" rel="next"', first).group(1)
    assert "kind=admin" in older


def test_list_ignores_a_broken_cursor(as_approver, three_tickets):
    assert len(numbers_on(as_approver.get("/tickets?after=garbage"))) == 3


def test_list_escapes_epm_values(as_approver, make_ticket):
    make_ticket(factories.application_request(user="<script>alert(1)</script>", productName="<b>x</b>",
                                              hostName="<img src=x onerror=alert(2)>"))
    page = as_approver.get("/tickets").get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page
    assert "<b>x</b>" not in page


def test_empty_list_says_so(as_approver):
    assert "No tickets" in as_approver.get("/tickets").get_data(as_text=True)


def decide(task, decision=contract.DECISION_APPROVED, status=contract.DELIVERY_DELIVERED):
    return Decision.create(task=task, decision=decision, reason="seen", decided_by="jchen", ticket_url="x",
                           status=status)


def finalize(task, decision=contract.DECISION_APPROVED, outcome=None):
    model = JIT_MODELS[task.kind]
    model.update(decision_final=True, final_decision=decision, epm_outcome=outcome).where(model.task == task).execute()


def statuses_on(response):
    """{number: decision status} of the rows shown."""
    page = response.get_data(as_text=True)
    return dict(re.findall(r'<a href="/tickets/([A-Z]+\d{7})">.*?<span class="decision-status">([^<]*)</span>',
                           page, re.S))


def test_a_request_that_expired_after_epm_refused_its_decision_is_listed_as_expired(as_approver, make_ticket):
    from app.jobs import expiry

    refused = make_ticket(factories.application_request(), age=timedelta(hours=30))
    decide(refused, status=contract.DELIVERY_FAILED)  # the ticket could be decided again; nobody did in time
    assert expiry.expire_pending() == 1

    assert statuses_on(as_approver.get("/tickets?decision=all")) == {refused.number: "Expired"}


def test_list_lands_on_the_tickets_awaiting_a_decision(as_approver, three_tickets):
    vpn, admin, editor = three_tickets
    decide(vpn)
    finalize(admin, contract.DECISION_DENIED)
    landing = as_approver.get("/tickets")
    assert numbers_on(landing) == [editor.number]
    assert statuses_on(landing) == {editor.number: "Awaiting decision"}
    page = landing.get_data(as_text=True)
    assert '<a href="/tickets?decision=all"' in page and ">All tickets</a>" in page
    assert numbers_on(as_approver.get("/tickets?decision=all")) == [editor.number, admin.number, vpn.number]


def test_list_shows_each_decision_status_in_words(as_approver, make_ticket):
    def ticket(body=None):
        return make_ticket(body or factories.application_request())

    expected = {}
    expected[ticket().number] = "Awaiting decision"
    sending = ticket()
    decide(sending, status=contract.DELIVERY_PENDING)
    expected[sending.number] = "Approved - sending to EPM"
    sent = ticket()
    decide(sent, status=contract.DELIVERY_DELIVERED)
    expected[sent.number] = "Approved"
    denied = ticket()
    decide(denied, contract.DECISION_DENIED, contract.DELIVERY_DELIVERED)
    finalize(denied, contract.DECISION_DENIED)
    expected[denied.number] = "Denied"
    failed = ticket()
    decide(failed, status=contract.DELIVERY_FAILED)
    expected[failed.number] = "Failed to send"
    for outcome in (contract.EPM_OUTCOME_REVOKED, contract.EPM_OUTCOME_ENDED_EARLY):
        ended = ticket(factories.admin_request())
        decide(ended)
        finalize(ended, outcome=outcome)
        expected[ended.number] = outcome
    expired = ticket()
    Task.update(expired_at=utcnow()).where(Task.id == expired.id).execute()
    expected[expired.number] = "Expired"
    closed = ticket()
    Task.update(state=contract.INCIDENT.closed_state).where(Task.id == closed.id).execute()
    expected[closed.number] = "No decision"

    response = as_approver.get("/tickets?decision=all")
    assert statuses_on(response) == expected
    page = response.get_data(as_text=True)
    assert '<td data-label="State"><span class="state">New</span></td>' in page  # the ticket state stays beside it


def test_list_filters_expired_tickets(as_approver, three_tickets):
    vpn, _, _ = three_tickets
    Task.update(expired_at=utcnow()).where(Task.id == vpn.id).execute()
    assert numbers_on(as_approver.get("/tickets?decision=expired")) == [vpn.number]
    assert vpn.number not in numbers_on(as_approver.get("/tickets"))


def test_awaiting_decision_leaves_out_requests_older_than_the_expiry(app, as_approver, make_ticket):
    old = make_ticket(factories.application_request(), age=timedelta(hours=25))
    new = make_ticket(factories.application_request(), age=timedelta(hours=23))
    assert numbers_on(as_approver.get("/tickets")) == [new.number]
    app.extensions["settings"] = replace(app.extensions["settings"], expire_pending_hours=0)
    assert numbers_on(as_approver.get("/tickets")) == [new.number, old.number]


def awaiting_in_navigation(response):
    match = re.search(r'class="awaiting">Awaiting decision\s*<span class="count">(\d+)</span>',
                      response.get_data(as_text=True))
    return match and int(match.group(1))


def test_navigation_counts_the_tickets_awaiting_a_decision(as_approver, three_tickets):
    vpn, admin, _ = three_tickets
    assert awaiting_in_navigation(as_approver.get("/tickets?decision=all")) == 3
    decide(vpn)
    finalize(admin)
    assert awaiting_in_navigation(as_approver.get("/tickets?decision=all")) == 1


def test_a_request_whose_decision_epm_refused_awaits_a_decision_again(as_approver, three_tickets):
    vpn, admin, editor = three_tickets
    decide(vpn, status=contract.DELIVERY_FAILED)  # "The ticket can be decided again."
    decide(admin)
    assert awaiting_in_navigation(as_approver.get("/tickets?decision=all")) == 2
    assert numbers_on(as_approver.get("/tickets")) == [editor.number, vpn.number]


def test_list_filters_keep_the_decision_choice(as_approver, three_tickets):
    page = as_approver.get("/tickets?decision=all&kind=admin").get_data(as_text=True)
    assert '<option value="all" selected>' in page
    first = as_approver.get("/tickets").get_data(as_text=True)
    assert '<option value="awaiting" selected>' in first


def count_queries(patch):
    sent = []
    original = type(database.obj).execute_sql

    def counting(self, sql, params=None, *args, **kwargs):
        sent.append(sql)
        return original(self, sql, params, *args, **kwargs)

    patch.setattr(type(database.obj), "execute_sql", counting)
    return sent


def test_list_reads_every_row_s_status_in_a_fixed_number_of_queries(as_approver, make_ticket, monkeypatch):
    monkeypatch.setattr(ticket_list, "group_choices", lambda: ())  # cached for seconds: not part of the rows' cost

    def queries_for_the_page():
        with monkeypatch.context() as patch:
            sent = count_queries(patch)
            assert as_approver.get("/tickets?decision=all").status_code == 200
        return len(sent)

    for _ in range(2):
        decide(make_ticket(factories.application_request()))
    few = queries_for_the_page()
    for _ in range(6):
        decide(make_ticket(factories.admin_request()), status=contract.DELIVERY_PENDING)
    assert queries_for_the_page() == few
