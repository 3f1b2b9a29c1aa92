"""Free-text ticket search through an index: LIKE '%text%', ignoring case, over each ticket's search document,
its number, short description, requester, host, application, publisher, reason and file hashes one a line.

Common text is cheapest found walking the newest-first list; rare text through the trigram index, but only its
rarer trigrams: every common one ("LT-" is in every host name) would make a machine's search read most of the index.
SQLite probes the FTS5 trigram table for the rarest; PostgreSQL's planner estimate tells common text apart."""
import json
import operator
import re
from functools import reduce

from peewee import SQL, NodeList, fn

from app.db import UNICODE_LOWER, database, is_sqlite
from app.models import Task

MIN_INDEXED_LENGTH = 3
# SQLite: matches of one trigram read (oldest first: FTS5 reads backwards slower) to tell
# how common it is.
SQLITE_PROBE_MATCHES = 200
# SQLite: at most this many trigrams of a long text are probed (spread over the text).
SQLITE_PROBED_TRIGRAMS = 10
# SQLite: tickets holding the two rarest trigrams beyond which the text counts as common.
# Checking a candidate costs about what walking a few rows of the list does; a text in
# 2,000 of 1,000,000 tickets has a page of them within the newest 25,000.
SQLITE_MAX_CANDIDATES = 2000
# SQLite: trigrams ANDed for the candidates, and the candidates they should leave. Each
# more trigram costs a seek per candidate; each candidate costs a ticket read to check.
SQLITE_ANDED_TRIGRAMS = 4
SQLITE_FEW_CANDIDATES = 50
# SQLite: checking a candidate's document costs what reading this many entries of a trigram's list of
# tickets does (a check reads and matches a ticket's document; an entry is a few bytes of a list; set on
# the bench's million-ticket history). Past the two rarest, a trigram is ANDed only when the checks it is
# expected to save cost more than reading its list, which grows with the history.
SQLITE_CHECK_COST_IN_ENTRIES = 200
# PostgreSQL: estimated matches from which the newest-first walk finds a page sooner.
POSTGRES_COMMON_MATCHES = 1000
# PostgreSQL: words of the text asked of the index (the longest); each costs a scan key.
POSTGRES_INDEXED_WORDS = 3
# PostgreSQL: the statistics target of the search index's expression. With the default 100
# histogram entries a text in 3 % of the tickets is taken for rare after one ANALYZE in twenty
# (0.97 ** 100) and read through the index (p95 1756 ms at 1,000,000 tickets); 1,000 misses 1 %
# in fewer than one ANALYZE in 20,000.
POSTGRES_SEARCH_STATISTICS = 1000

SEARCHED_COLUMNS = (Task.number, Task.short_description, Task.requester, Task.host, Task.subject, Task.publisher,
                    Task.search_details)
# The indexed expression of migration 28's `task_search_trgm` (and what SQLite's `task_search` holds);
# the query must spell it the same way for PostgreSQL to use the index
# (tests/tickets/test_tickets_query_plans.py checks the plan).
POSTGRES_DOCUMENT = "(" + " || chr(10) || ".join(f"coalesce({column.column_name}, '')"
                                                 for column in SEARCHED_COLUMNS) + ")"
SQLITE_DOCUMENT = POSTGRES_DOCUMENT.replace("chr(10)", "char(10)")
# The request's details a ticket is also found by, from its JIT record's request_info.
HASH_KEYS = ("sha256Hash", "sha1Hash")
# pg_trgm's words: runs of letters and digits.
_WORD = re.compile(r"[^\W_]+")


def search_details(reason, request_info):
    """What Task.search_details holds: the reason and the file hashes EPM sent, one a line (None without any)."""
    pieces = [reason] + [(request_info or {}).get(key) for key in HASH_KEYS]
    return "\n".join(str(piece) for piece in pieces if piece) or None


def refill_sqlite_index():
    """SQLite: index every ticket's document again in one pass (after a bulk load without the triggers)."""
    database.execute_sql("INSERT INTO task_search (task_search) VALUES ('delete-all')")
    database.execute_sql(f"INSERT INTO task_search (rowid, document) SELECT id, {SQLITE_DOCUMENT} FROM task")


def _like_pattern(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like_condition(text):
    """Tickets with `text` in a searched column, ignoring case: for text too short for the trigram index, and
    for common text walked newest first."""
    if is_sqlite() and not text.isascii():
        # SQLite's LIKE folds ASCII letters only: both sides are folded by the lower() that folds every alphabet,
        # as the trigram index and _containing_on_sqlite do, so "ös" meets "ÖSTERBERG".
        pattern, lower = _like_pattern(text.lower()), getattr(fn, UNICODE_LOWER)
        matches = [NodeList((lower(column), SQL("LIKE"), pattern, SQL("ESCAPE '\\'"))) for column in SEARCHED_COLUMNS]
    else:
        matches = [column.contains(text) for column in SEARCHED_COLUMNS]
    return reduce(operator.or_, matches)


def text_condition(text):
    """Tickets whose number, requester, host, application or publisher contains `text`."""
    if len(text) < MIN_INDEXED_LENGTH:
        return _like_condition(text)
    if is_sqlite():
        return _sqlite_condition(text)
    return _postgres_condition(text)


def _trigrams(text):
    """(position, trigram) for each distinct trigram of `text` (as the trigram index folds case)."""
    found = {}
    for start in range(len(text) - 2):
        found.setdefault(text[start:start + 3].lower(), (start, text[start:start + 3]))
    return list(found.values())


def _fts_string(text):
    return '"' + text.replace('"', '""') + '"'


def _spread(items, count):
    if len(items) <= count:
        return items
    return [items[round(index * (len(items) - 1) / (count - 1))] for index in range(count)]


def _trigram_shares_on_sqlite(trigrams):
    """The share of tickets holding each trigram, judged from its first matches; and how many tickets."""
    member = "SELECT ?, count(*), max(rowid) FROM (SELECT rowid FROM task_search WHERE task_search MATCH ? LIMIT ?)"
    params = []
    for index, (_start, trigram) in enumerate(trigrams):
        params += [index, _fts_string(trigram), SQLITE_PROBE_MATCHES]
    rows = database.execute_sql(" UNION ALL ".join([member] * len(trigrams)), params).fetchall()
    # Two subqueries: SQLite reads min() or max() off the index end only when alone.
    first, newest = database.execute_sql(
        "SELECT (SELECT min(rowid) FROM task), (SELECT max(rowid) FROM task)").fetchone()
    first, newest = first or 0, newest or 0
    shares = {}
    for index, count, last in rows:
        span = newest if count < SQLITE_PROBE_MATCHES else last
        shares[trigrams[index]] = count / max(span - first + 1, 1)
    return shares, newest - first + 1


def _selective_trigrams(shares, tickets):
    """The rarest trigrams until they are expected to leave a few dozen tickets: the two
    rarest, then those apart from every one chosen (neighbours mostly come together, as
    "159" with "598"; a trigram apart says something else: "T-M" the site), then any; past the
    two rarest, only a trigram whose list costs less to read than the checks it should save."""
    ordered = sorted(shares, key=shares.get)
    chosen, expected = [], float(tickets)
    for only_apart in (False, True, False):
        for item in ordered:
            if len(chosen) == SQLITE_ANDED_TRIGRAMS or chosen and expected <= SQLITE_FEW_CANDIDATES:
                break
            if item in chosen or only_apart and any(abs(item[0] - other[0]) < 3 for other in chosen):
                continue
            saved_checks = expected * (1 - shares[item])
            if len(chosen) >= 2 and shares[item] * tickets > saved_checks * SQLITE_CHECK_COST_IN_ENTRIES:
                continue
            chosen.append(item)
            expected *= shares[item]
            if len(chosen) == 2 and not only_apart:
                break
    return [trigram for _start, trigram in chosen]


def _sqlite_condition(text):
    trigrams = _spread(_trigrams(text), SQLITE_PROBED_TRIGRAMS)
    shares, tickets = _trigram_shares_on_sqlite(trigrams)
    if min(shares.values()) == 0:
        return Task.id.in_([])  # a trigram no ticket holds: no ticket holds the text
    candidates = [rowid for rowid, in database.execute_sql(
        "SELECT rowid FROM task_search WHERE task_search MATCH ? LIMIT ?",
        (" AND ".join(map(_fts_string, _selective_trigrams(shares, tickets))), SQLITE_MAX_CANDIDATES + 1))]
    if len(candidates) > SQLITE_MAX_CANDIDATES:
        return _like_condition(text)
    matches = _containing_on_sqlite(candidates, text)
    return Task.id.in_(SQL("(SELECT value FROM json_each(?))", [json.dumps(matches)]))


def _containing_on_sqlite(candidates, text):
    """The candidates with `text` inside their search document, ignoring case as FTS5's
    trigram tokenizer does (for every alphabet, where SQLite's LIKE folds only ASCII)."""
    needle = text.lower()
    # The document as the index holds it, put together by SQLite: one text a row to fold and search.
    rows = database.execute_sql(f"SELECT id, {SQLITE_DOCUMENT} FROM task WHERE id IN (SELECT value FROM json_each(?))",
                                (json.dumps(candidates),))
    return [task_id for task_id, text in rows if needle in text.lower()]


def _estimated_matches_on_postgres(pattern):
    plan = database.execute_sql(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM task WHERE {POSTGRES_DOCUMENT} ILIKE %s",
                                (pattern,)).fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return plan[0]["Plan"]["Plan Rows"]


def keep_search_statistics():
    """Give the PostgreSQL search index's expression its statistics target (migration 12); ANALYZE uses it next."""
    database.execute_sql(f"ALTER INDEX task_search_trgm ALTER COLUMN 1 SET STATISTICS {POSTGRES_SEARCH_STATISTICS}")


def _postgres_condition(text):
    pattern = _like_pattern(text)
    whole = SQL(f"{POSTGRES_DOCUMENT} ILIKE %s ESCAPE '\\'", [pattern])
    words = sorted({word for word in _WORD.findall(text) if len(word) >= MIN_INDEXED_LENGTH}, key=len, reverse=True)
    if not words or words == [text] or _estimated_matches_on_postgres(pattern) >= POSTGRES_COMMON_MATCHES:
        return whole
    # The whole text is checked outside the index: `IS TRUE` keeps the planner from adding
    # its edge trigrams to the index scan. Each word (letters and digits only) is itself a
    # LIKE pattern, and any ticket containing the text contains every word of it.
    condition = SQL(f"({POSTGRES_DOCUMENT} ILIKE %s ESCAPE '\\') IS TRUE", [pattern])
    for word in words[:POSTGRES_INDEXED_WORDS]:
        condition = SQL(f"{POSTGRES_DOCUMENT} ILIKE %s", ["%" + word + "%"]) & condition
    return condition
