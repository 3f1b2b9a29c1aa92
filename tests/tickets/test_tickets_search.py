"""Free-text search finds exactly the tickets containing the text, newest first, page by page,
whichever way it reaches them (the rare trigrams, or the newest-first walk for common text)."""
import pytest

from app.models import Task
from app.tickets import search
from app.tickets.rows import row_page
from app.web import ticket_list
from bench import generate
from tests import factories

TICKETS = 3000


@pytest.fixture
def history(app):
    generate.generate(TICKETS)
    # An application ticket half-way down, as the benchmark's search sample is.
    return Task.select().where(Task.subject.contains("VPN Client")).order_by(Task.id).offset(40).get()


def containing(text):
    """Every ticket holding `text` in a searched column, newest first: read from all of them."""
    needle = text.lower()
    tasks = [task for task in Task.select().order_by(Task.opened_at.desc(), Task.id.desc())
             if any(needle in (getattr(task, column.name) or "").lower() for column in search.SEARCHED_COLUMNS)]
    return [task.id for task in tasks]


def every_page(text, size=20):
    filters = ticket_list.TicketFilters(q=text)
    page = row_page(ticket_list.filtered_query(filters), size=size)
    found = [row.id for row in page.rows]
    while page.older:
        page = row_page(ticket_list.filtered_query(filters), after=page.older, size=size)
        found += [row.id for row in page.rows]
    return found


def texts_of(task):
    return {"person": task.requester.split("\\")[-1], "machine": task.host, "application": "VPN Client",
            "part of a machine": task.host[3:], "number": task.number[3:],
            "short description": task.short_description[-25:], "reason": task.jit_request.reason[3:15],
            "hash": task.jit_request.request_info["sha256Hash"][5:25].upper()}


KINDS = ["person", "machine", "application", "part of a machine", "number", "short description", "reason", "hash"]


@pytest.mark.parametrize("kind", KINDS)
def test_search_pages_through_exactly_the_tickets_holding_the_text(history, kind):
    text = texts_of(history)[kind]
    expected = containing(text)
    assert history.id in expected
    assert every_page(text) == expected


@pytest.mark.parametrize("kind", ["person", "machine", "application", "hash"])
def test_search_finds_the_same_tickets_by_index_and_by_walking_the_list(history, monkeypatch, kind):
    text = texts_of(history)[kind]
    expected = containing(text)
    # Every text counts as common: the newest-first walk with LIKE.
    monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 0)
    monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 0)
    assert every_page(text) == expected
    # Every text counts as rare: the trigram index.
    monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 10 ** 6)
    monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 10 ** 9)
    assert every_page(text) == expected


def test_search_for_text_no_ticket_holds_finds_nothing(history):
    assert every_page("LT-NOWHERE-0000") == []
    assert every_page(history.host + "-9") == []


def test_search_ignores_case_beyond_ascii(history):
    Task.update(requester="CORP\\jürgen.größe").where(Task.id == history.id).execute()
    assert every_page("JÜRGEN.GRÖ") == [history.id]


@pytest.mark.parametrize("text, common", [("österberg", False), ("österberg", True), ("ös", False)])
def test_search_ignores_case_beyond_ascii_for_short_and_common_text(deliver, monkeypatch, text, common):
    # Text under three characters, and common text, are found walking the list rather than through the index.
    for _ in range(2):
        deliver(factories.application_request(user="CORP\\ÖSTERBERG"))
    if common:
        monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 1)
        monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 0)
    assert [Task.get_by_id(found).number for found in every_page(text)] == ["INC0010002", "INC0010001"]


def test_search_in_a_short_history_finds_its_tickets(app):
    # So few tickets that any one trigram is expected to leave fewer than a page.
    generate.generate(3)
    task = Task.select().order_by(Task.id).first()
    assert every_page(task.host) == containing(task.host)
    assert task.id in every_page(task.host)


def test_sqlite_ands_a_trigram_past_the_two_rarest_only_when_its_list_costs_less_than_the_checks_it_saves():
    """Shares of tickets holding each trigram, as probed at a million tickets. A trigram apart from the
    rarest ones is ANDed while the checks it should rule out cost more than reading its list; past that,
    one in a tenth of the tickets is left out though the candidates are still a few dozen."""
    machine = {(8, "490"): 0.0155, (7, "149"): 0.0401, (1, "T-P"): 0.0956, (4, "AR-"): 0.0956}
    assert search._selective_trigrams(machine, 1_000_000) == ["490", "149", "T-P"]
    person = {(0, "ela"): 0.004, (6, "n16"): 0.0137, (3, "rse"): 0.0575}
    assert search._selective_trigrams(person, 1_000_000) == ["ela", "n16"]
    # A small history: the two rarest already leave a few candidates.
    assert search._selective_trigrams(machine, 10_000) == ["490", "149"]
