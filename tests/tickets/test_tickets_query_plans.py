"""Cheap guards for what keeps the broker fast with a long history (docs/performance.md).

The ticket list, its deep pages and the JSON API's cursor pages must read the
`task_newest` index, and free-text search the search index of migration 28, on both
databases: checked with EXPLAIN on ten thousand generated tickets, statistics gathered
and no planner setting changed, so a change that turns them into a scan of every
ticket fails here rather than in production.
(One password check per credential per cache lifetime is guarded in tests/intake,
test_intake_webhook.py, through `verification_cache.verifications`.)
"""
import re
from datetime import datetime

import pytest

from app.db import database, is_sqlite
from app.models import Task
from app.tickets import rows
from app.tickets.cursors import encode_cursor, newer_than, older_than
from app.web import ticket_list
from bench import generate

TICKETS = 10_000


@pytest.fixture
def history(app):
    generate.generate(TICKETS)
    # Not .get(): peewee's get() pages to the first row and drops the offset.
    return list(Task.select().order_by(Task.id).offset(TICKETS // 2).limit(1))[0]


def plan(query):
    sql, params = query.sql()
    if is_sqlite():
        return " ".join(row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    return " ".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def newest_first(query, size=51):
    return query.order_by(Task.opened_at.desc(), Task.id.desc()).limit(size)


def test_perf_list_first_page_reads_the_newest_index(history):
    assert "task_newest" in plan(newest_first(ticket_list.filtered_query(ticket_list.TicketFilters())))


def assert_seeks_the_newest_index(query):
    """A seek to the cursor in task_newest, not a walk from one end filtering every row on the way."""
    text = plan(query)
    if is_sqlite():
        assert "SEARCH t1 USING INDEX task_newest (opened_at" in text
        assert "SCAN" not in text
    else:
        seek = r"Index Scan( Backward)? using task_newest on task t1\s+\([^)]*\)\s+Index Cond: \(opened_at [<>]="
        assert re.search(seek, text)


def test_perf_deep_page_seeks_the_newest_index(history):
    assert_seeks_the_newest_index(newest_first(ticket_list.filtered_query(ticket_list.TicketFilters()).where(
        older_than((history.opened_at, history.id)))))


def test_perf_newer_page_seeks_the_newest_index(history):
    assert_seeks_the_newest_index(ticket_list.filtered_query(ticket_list.TicketFilters()).where(
        newer_than((history.opened_at, history.id))).order_by(Task.opened_at.asc(), Task.id.asc()).limit(51))


def test_perf_list_pages_as_read_seek_the_newest_index(history, client, approver_auth, monkeypatch):
    """The queries the browser list and the JSON list send for pages below and above a cursor, as sent."""
    from app.tickets import api

    sent = []
    monkeypatch.setattr(rows, "read_rows", lambda query, row_type=rows.TicketRow: sent.append((query, row_type)) or [])
    monkeypatch.setattr(api, "read_rows", lambda query, row_type=rows.TicketRow: sent.append((query, row_type)) or [])
    cursor = encode_cursor(history)
    rows.row_page(ticket_list.filtered_query(ticket_list.TicketFilters()), after=cursor, row_type=rows.ListedTicket)
    rows.row_page(ticket_list.filtered_query(ticket_list.TicketFilters()), before=cursor, row_type=rows.ListedTicket)
    assert client.get("/api/x_bets_pmc_jit/tickets", query_string={"cursor": cursor},
                      headers=approver_auth).status_code == 200
    assert len(sent) == 3
    for query, row_type in sent:
        assert_seeks_the_newest_index(query.select(rows._COLUMNS[row_type][0]))


@pytest.mark.parametrize("kind", ["person", "machine"])
def test_perf_search_reads_the_search_index(history, kind):
    text = history.requester.split("\\")[-1] if kind == "person" else history.host
    query = ticket_list.filtered_query(ticket_list.TicketFilters(q=text))
    if is_sqlite():
        # The trigram index named the matching tickets before this query: it reads them by id.
        text_plan = plan(newest_first(query))
        assert "USING INTEGER PRIMARY KEY" in text_plan
        assert "SCAN" not in text_plan.replace("SCAN json_each", "")
    else:
        # Which way PostgreSQL reaches the newest matches depends on how many there are;
        # the matching itself must be able to use the trigram index.
        assert "task_search_trgm" in plan(query)
    found = list(newest_first(query))
    assert found and all(text.lower() in (task.requester + " " + task.host).lower() for task in found)


def test_perf_search_for_common_text_walks_the_newest_index(history, monkeypatch):
    from app.tickets import search

    monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 5)
    monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 5)
    # Common for PostgreSQL's costs too: in a few thousand tickets, a text in a few percent
    # of them is cheaper sorted than walked, and the planner, estimating it well, sorts.
    every_third = [task.id for task in Task.select(Task.id).order_by(Task.id)][::3]
    Task.update(subject="VPN Client").where(Task.id.in_(every_third)).execute()
    if not is_sqlite():
        database.execute_sql("ANALYZE task")
    assert "task_newest" in plan(newest_first(ticket_list.filtered_query(ticket_list.TicketFilters(q="VPN Client"))))


def test_perf_search_index_follows_new_changed_and_deleted_tickets(history):
    def found(text):
        return [task.id for task in ticket_list.filtered_query(ticket_list.TicketFilters(q=text))]

    assert found("zz-unique-host") == []
    Task.update(host="LT-ZZ-UNIQUE-HOST").where(Task.id == history.id).execute()
    assert found("zz-unique-host") == [history.id]
    Task.update(host="LT-OTHER").where(Task.id == history.id).execute()
    assert found("zz-unique-host") == []
    new = Task.create(sys_class_name="incident", number="INC9999999", state=1, kind="application",
                      request_id="perf-new", subject="Frobnicator Studio", opened_at=datetime(2030, 1, 1))
    assert found("frobnicator") == [new.id]
    new.delete_instance()
    assert found("frobnicator") == []


def test_perf_short_search_text_still_finds_tickets(history):
    # Under three characters there is no trigram to look up: the list falls back to LIKE.
    tasks = list(ticket_list.filtered_query(ticket_list.TicketFilters(q="LT")).limit(5))
    assert len(tasks) == 5


def test_perf_assignment_groups_are_every_group_in_order(history):
    Task.update(assignment_group="").where(Task.id == history.id).execute()
    expected = [row.assignment_group for row in Task.select(Task.assignment_group).where(Task.assignment_group != "")
                .distinct().order_by(Task.assignment_group)]
    assert ticket_list.assignment_groups() == expected == sorted(generate.GROUPS)


def test_perf_common_and_rare_search_text_find_the_same_tickets(history, monkeypatch):
    from app.tickets import search

    def found(text):
        return [task.id for task in newest_first(ticket_list.filtered_query(ticket_list.TicketFilters(q=text)), 500)]

    indexed = found("VPN Client")
    monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 5)
    monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 5)
    assert found("VPN Client") == indexed
    assert len(indexed) > 5


def search_statistics_target():
    return database.execute_sql("SELECT attstattarget FROM pg_attribute WHERE attrelid = 'task_search_trgm'::regclass "
                                "AND attnum = 1").fetchone()[0]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_perf_postgres_upgrade_gives_the_search_index_its_larger_sample(app):
    from app.migrations import upgrade
    from app.models import SchemaVersion
    from app.tickets import search

    # A database from before migration 12, with the default target (-1).
    database.execute_sql("ALTER INDEX task_search_trgm ALTER COLUMN 1 SET STATISTICS -1")
    SchemaVersion.delete().where(SchemaVersion.version == 12).execute()

    assert upgrade() == ["search estimates from a larger sample"]
    assert search_statistics_target() == search.POSTGRES_SEARCH_STATISTICS


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_perf_postgres_search_index_keeps_its_larger_sample_through_a_bulk_load(history):
    # The generator drops the search index for its bulk load and builds it again.
    from app.tickets import search

    assert search_statistics_target() == search.POSTGRES_SEARCH_STATISTICS


def test_perf_generated_history_is_settled_before_it_is_measured(history):
    """bench.generate leaves no load behind to be written out while the list pages are measured."""
    if is_sqlite():
        # (busy, frames in the WAL, frames checkpointed): the WAL was emptied into the database.
        assert database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchone() == (0, 0, 0)
    else:
        # VACUUM marked the loaded pages all-visible (ANALYZE alone leaves relallvisible at 0).
        pages, visible = database.execute_sql(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'task'").fetchone()
        assert pages > 0 and visible == pages


def awaiting_filters(app):
    with app.test_request_context():
        return ticket_list.filtered_query(ticket_list.TicketFilters(decision=ticket_list.DECISION_AWAITING))


def test_perf_awaiting_decision_reads_the_newest_index(app, history):
    text = plan(newest_first(awaiting_filters(app)))
    assert "task_newest" in text
    if is_sqlite():
        # Each ticket's decisions and EPM record are looked up by index, never read in full.
        assert "SCAN" not in text.replace("SCAN t1 USING INDEX task_newest", "")


def test_perf_awaiting_decision_deep_page_seeks_the_newest_index(app, history):
    query = newest_first(awaiting_filters(app).where(older_than((history.opened_at, history.id))))
    if is_sqlite():
        assert_seeks_the_newest_index(query)
    else:
        # The seek's range has two ends here: the expiry's cut-off and the cursor.
        seek = r"Index Scan( Backward)? using task_newest on task t1\s+\([^)]*\)\s+Index Cond: \(+opened_at [<>]="
        assert re.search(seek, plan(query))


# --- The ticket page's earlier requests (app/tickets/context.py) --------------------------


def application_ticket(history):
    """An application ticket from the middle of the history: earlier requests on both sides of it."""
    return list(Task.select().where(Task.kind == "application", Task.id >= history.id).order_by(Task.id).limit(1))[0]


def assert_reads_range_of(index, query):
    """The earlier requests are a range of `index` from the ticket's own time back, read from the index alone
    (it holds every column they are listed with, the outcome kept on each ticket among them): no table read."""
    text = plan(query)
    if is_sqlite():
        assert re.search(rf"SEARCH t1 USING COVERING INDEX {index} \([^)]*=\? AND opened_at>\? AND opened_at<\?\)",
                         text), text
        assert "SCAN" not in text
    else:
        seek = (rf"Index Only Scan( Backward)? using {index} on task t[\d_]+"
                rf"\s+\([^)]*\)\s+Index Cond: \(.* AND \(opened_at <= ")
        assert re.search(seek, text), text
        assert "Seq Scan" not in text and "Heap Scan" not in text


def test_perf_earlier_requests_of_the_person_read_their_index(history):
    from app.tickets import context

    task = application_ticket(history)
    assert_reads_range_of("task_requester_earlier", context.earlier_query(task, Task.requester == task.requester))


def test_perf_earlier_requests_of_the_application_read_their_index(history):
    from app.tickets import context

    task = application_ticket(history)
    by_hash, by_name = context.application_conditions(task, task.jit_request)  # generated: a SHA-256 only
    assert_reads_range_of("task_sha256_earlier", context.earlier_query(task, by_hash))
    assert_reads_range_of("task_application_earlier", context.earlier_query(task, by_name))


def test_perf_earlier_requests_are_counted_to_one_more_than_are_shown(history, monkeypatch):
    """Past SCANNED, a page says "more than" rather than counting every earlier request."""
    from app.tickets import context

    task = application_ticket(history)
    Task.update(requester=task.requester, opened_at=task.opened_at).where(
        Task.id.in_([row.id for row in Task.select(Task.id).where(Task.id < task.id).order_by(Task.id.desc())
                     .limit(12)])).execute()
    monkeypatch.setattr(context, "SCANNED", 10)
    group = context.decision_context(task, 0).same_user
    assert (group.total, group.more) == (10, True)
    assert sum(count for _outcome, count in group.outcomes) == 10
