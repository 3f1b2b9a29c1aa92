"""Every log page reads only its page, however long the log: the first page, a page below an entry
and a page above one, in the browser and the JSON API, each seek the primary key (app/pages.py).

Checked with EXPLAIN, as sent, on logs of tens of thousands of rows with the databases' statistics
gathered (ANALYZE) and no planner setting changed: a plan that sorts or scans a whole log fails here
rather than at ten million rows (docs/performance.md)."""
import re
from contextlib import contextmanager

import pytest

from app.audit.models import AuditEntry
from app.db import database, is_sqlite
from app.logs.models import AppLog, OutboundCall
from app.models import IncomingRequest
from bench import logs

ROWS = 50_000
LOGS = {
    "incoming": (IncomingRequest, "/admin/incoming", "/api/x_bets_pmc_jit/ops/incoming_requests"),
    "incoming, the ticket API's twin": (IncomingRequest, None, "/api/x_bets_pmc_jit/incoming_requests"),
    "outbound": (OutboundCall, "/admin/outbound", "/api/x_bets_pmc_jit/ops/outbound_calls"),
    "app log": (AppLog, "/admin/logs", "/api/x_bets_pmc_jit/ops/app_log"),
}


@pytest.fixture
def long_logs(app):
    logs.generate_logs(ROWS)


@contextmanager
def statements_on(table):
    """The SELECT statements the code sends that read `table`, as sent (SQL and parameters)."""
    sent = []
    connection = database.obj
    original = connection.execute_sql

    def recording(sql, params=None, *args, **kwargs):
        if sql.lstrip().upper().startswith("SELECT") and f'FROM "{table}"' in sql:
            sent.append((sql, params))
        return original(sql, params, *args, **kwargs)

    connection.execute_sql = recording
    try:
        yield sent
    finally:
        del connection.execute_sql


def plan(sql, params):
    if is_sqlite():
        return "\n".join(row[3] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    return "\n".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params).fetchall())


def assert_reads_only_its_page(text, table):
    """Newest (or oldest) first straight off the primary key: no sort, no scan of the log beyond the page."""
    if is_sqlite():
        # The table is its own primary-key index: a SCAN in rowid order stops at the LIMIT.
        assert "TEMP B-TREE" not in text, text
        assert re.search(r"(SCAN|SEARCH) t1( USING INTEGER PRIMARY KEY \(rowid[<>]\?\))?$", text, re.M), text
        assert not re.search(r"SCAN t[2-9]", text), text
    else:
        assert f"Seq Scan on {table}" not in text, text
        assert "Sort" not in text, text
        assert re.search(rf"Index Scan( Backward)? using {table}_pkey on {table} t1", text), text


def assert_seeks_the_primary_key(text):
    if is_sqlite():
        assert re.search(r"SEARCH t1 USING INTEGER PRIMARY KEY \(rowid[<>]\?\)", text), text
    else:
        assert re.search(r"Index Cond: \(id [<>] (\$\d|\d+)\)", text), text


def middle_entry(model):
    return model.select(model.sys_id).order_by(model.id).offset(ROWS // 10).limit(1).scalar()


@pytest.mark.parametrize("name", LOGS)
def test_perf_log_pages_seek_the_primary_key(long_logs, as_admin, admin_auth, name):
    model, page, api = LOGS[name]
    table = model._meta.table_name
    entry = middle_entry(model)
    with statements_on(table) as sent:
        for path in filter(None, (page, api)):
            for start in ({}, {"before": entry}, {"after": entry}):
                answer = as_admin.request("GET", path, query_string=start, headers=None if path == page else admin_auth)
                assert answer.status_code == 200, answer.get_data(as_text=True)
    listed = [statement for statement in sent if "LIMIT" in statement[0].upper()]
    assert len(listed) == 3 * len(list(filter(None, (page, api))))
    for index, (sql, params) in enumerate(listed):
        text = plan(sql, params)
        assert_reads_only_its_page(text, table)
        if index % 3:
            assert_seeks_the_primary_key(text)


def test_perf_audit_pages_seek_the_primary_key(long_logs, as_admin, admin_auth):
    table = AuditEntry._meta.table_name
    entry_id = AuditEntry.select(AuditEntry.id).order_by(AuditEntry.id).offset(ROWS // 10).limit(1).scalar()
    with statements_on(table) as sent:
        for path, start in (("/admin/audit", {}), ("/admin/audit", {"before": entry_id}),
                            ("/api/x_bets_pmc_jit/audit", {}), ("/api/x_bets_pmc_jit/audit", {"after": entry_id})):
            answer = as_admin.request("GET", path, query_string=start, headers=admin_auth if "api" in path else None)
            assert answer.status_code == 200, answer.get_data(as_text=True)
    listed = [statement for statement in sent if "LIMIT" in statement[0].upper()]
    assert len(listed) == 4
    for index, (sql, params) in enumerate(listed):
        text = plan(sql, params)
        assert_reads_only_its_page(text, table)
        if index % 2:
            assert_seeks_the_primary_key(text)


def test_perf_audit_action_choices_seek_the_action_index(long_logs):
    from app.audit import service

    table = AuditEntry._meta.table_name
    assert service.action_names() == sorted({entry.action for entry in AuditEntry.select(AuditEntry.action)})
    text = plan(service._DISTINCT_ACTIONS, ())
    # A seek per action (SEARCH; under a Limit), never a walk of the whole index (SCAN; Unique over it).
    if is_sqlite():
        assert not re.search(rf"^SCAN {table}", text, re.M), text
        assert re.search(rf"SEARCH {table} USING COVERING INDEX \w+ \(action>\?\)", text), text
    else:
        assert f"Seq Scan on {table}" not in text and "Unique" not in text, text
        assert re.search(r"Limit .*\n\s+->  Index Only Scan using \w+ on " + table, text), text
