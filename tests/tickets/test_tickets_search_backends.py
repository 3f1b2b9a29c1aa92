"""Free-text search answers the same on SQLite and PostgreSQL: the same tickets, in the same order,
for the same rows, whether each database reaches them through its trigram index or its newest-first walk."""
import pytest

from app import create_app
from app.db import close_pools, database
from app.migrations import upgrade
from app.models import Task
from app.tickets.rows import row_page
from app.web import ticket_list
from bench import generate
from tests import factories
from tests.conftest import basic_auth, empty_tables

TICKETS = 2000
# Rare and common text of every searched kind; the person, machine and hash come from the rows.
FIXED_TEXTS = ["VPN Client", "Zoom", "Microsoft Corporation", "Customer demo", "production incident", "LT-LIS-", "LT-",
               "corp\\a", "requests Admin", "NOWHERE-0000", "jürgen.GRÖ", "lisbon office", "3F786850E387"]


def every_page(text, size=25):
    filters = ticket_list.TicketFilters(q=text)
    page = row_page(ticket_list.filtered_query(filters), size=size)
    found = [row.number for row in page.rows]
    while page.older:
        page = row_page(ticket_list.filtered_query(filters), after=page.older, size=size)
        found += [row.number for row in page.rows]
    return found


def answers(database_url):
    """Each search text's results on a database holding the generated history and two delivered tickets."""
    app = create_app({"database_url": database_url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        try:
            with database.connection_context():
                upgrade()
                if not database_url.startswith("sqlite"):
                    empty_tables()
                generate.generate(TICKETS)
            factories.account("epm", "api")
            client = app.test_client()
            for body in (factories.application_request("search-a", user="CORP\\jürgen.größe"),
                         factories.admin_request("search-b", reason="Reinstall the Lisbon office printer")):
                answer = client.post("/api/x_bets_pmc_jit/authorization_request_webhook_handler", json=body,
                                     headers=basic_auth("epm", factories.PASSWORD))
                assert answer.json["result"]["status"] == "processed", answer.get_data(as_text=True)
            with database.connection_context():
                sample = Task.select().where(Task.kind == "application").order_by(Task.id).offset(TICKETS // 3).get()
                texts = FIXED_TEXTS + [sample.requester.split("\\")[-1], sample.host[2:],
                                       sample.jit_request.request_info["sha256Hash"][10:40]]
                return {text: every_page(text) for text in texts}
        finally:
            close_pools()


def test_search_finds_the_same_tickets_in_the_same_order_on_both_databases(tmp_path, postgres_url):
    on_sqlite = answers(f"sqlite:///{tmp_path}/search.db")
    on_postgres = answers(postgres_url)
    assert on_sqlite == on_postgres
    # Not agreement on nothing: rare and common texts find tickets, a text nobody holds none.
    assert on_sqlite["NOWHERE-0000"] == []
    assert 0 < len(on_sqlite["jürgen.GRÖ"]) < 3
    assert len(on_sqlite["VPN Client"]) > 50 and len(on_sqlite["LT-"]) == TICKETS + 1
    assert all(len(found) for text, found in on_sqlite.items() if text != "NOWHERE-0000")


@pytest.mark.parametrize("text", ["Lisbon office", "9F86D081884C7D65", "de23001b", "requests Example VPN"])
def test_a_delivered_ticket_is_found_by_its_reason_hashes_and_short_description(make_ticket, text):
    task = make_ticket()
    assert every_page(text) == [task.number]
