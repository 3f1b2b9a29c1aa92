"""Free-text ticket search that reads an index, not every ticket (migration 8 creates it).

The text is looked for inside the ticket number, requester, host, application and
publisher, ignoring case, as SQL's LIKE '%text%' would. SQLite answers it from the
`task_search` FTS5 table (trigram tokenizer: any substring of three characters or
more); PostgreSQL from a pg_trgm GIN index over the same columns. Shorter text has
no trigram to look up and falls back to LIKE over the table.
"""
from peewee import SQL

from app.db import database, is_sqlite
from app.models import Task

MIN_INDEXED_LENGTH = 3
# From this many matches on, SQLite walks the newest-first index instead (see above).
SQLITE_COMMON_MATCHES = 1000

# The indexed expression of migration 8's `task_search_trgm`; the query must spell it the
# same way for PostgreSQL to use the index (tests/perf checks the plan).
POSTGRES_DOCUMENT = ("(coalesce(number, '') || ' ' || coalesce(requester, '') || ' ' || coalesce(host, '') || ' ' "
                     "|| coalesce(subject, '') || ' ' || coalesce(publisher, ''))")
SEARCHED_COLUMNS = (Task.number, Task.requester, Task.host, Task.subject, Task.publisher)


def _like_pattern(text):
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like_condition(text):
    condition = None
    for column in SEARCHED_COLUMNS:
        condition = column.contains(text) if condition is None else condition | column.contains(text)
    return condition


def _is_common_on_sqlite(phrase):
    probe = database.execute_sql("SELECT rowid FROM task_search WHERE task_search MATCH ? ORDER BY rowid DESC "
                                 "LIMIT 1 OFFSET ?", (phrase, SQLITE_COMMON_MATCHES - 1))
    return probe.fetchone() is not None


def text_condition(text):
    """Tickets whose number, requester, host, application or publisher contains `text`."""
    if len(text) < MIN_INDEXED_LENGTH:
        return _like_condition(text)
    if is_sqlite():
        phrase = '"' + text.replace('"', '""') + '"'
        if _is_common_on_sqlite(phrase):
            return _like_condition(text)
        return Task.id.in_(SQL("(SELECT rowid FROM task_search WHERE task_search MATCH ?)", [phrase]))
    return SQL(f"{POSTGRES_DOCUMENT} ILIKE %s ESCAPE '\\'", [_like_pattern(text)])
