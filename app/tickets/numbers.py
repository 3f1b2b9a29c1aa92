"""Ticket numbers: a prefix and a 7-digit counter per task table, gap-free and unique.

The counter is incremented in the ticket's own transaction: its lock orders concurrent requests,
and a rolled-back ticket gives its number back."""
from app.db import database, insert_row, insert_statement, is_sqlite, prepared
from app.models import NumberCounter, Task

# The increment's SQL text, by the database's parameter mark: written by peewee once per process.
_INCREMENT_SQL = {}


def _increment(table):
    """The counter of `table` moved on by one, in one statement; returns [(the new next number,)], [] without a row."""
    return database.execute_sql(_increment_sql(), (1, table)).fetchall()


def _increment_sql():
    """The text of the increment (parameters: 1, the table), written by peewee once per parameter mark."""
    param = database.obj.param
    sql = _INCREMENT_SQL.get(param)
    if sql is None:
        sql = _INCREMENT_SQL[param] = prepared(NumberCounter.update(next_number=NumberCounter.next_number + 1)
                                               .where(NumberCounter.table == "")
                                               .returning(NumberCounter.next_number).sql()[0])
    return sql


def allocate_number(ticket_type):
    """Take the next number for `ticket_type`; call inside a write transaction."""
    # One statement in the common case (the counter row exists): the increment returns the
    # number it moved past. Both SQLite (3.35+) and PostgreSQL know UPDATE ... RETURNING.
    for _ in range(2):
        taken = _increment(ticket_type.table)
        if taken:
            return ticket_type.format_number(taken[0][0] - 1)
        _create_counter(ticket_type)
    raise AssertionError("the number counter row vanished")  # pragma: no cover - the insert above creates it


def _create_counter(ticket_type):
    (NumberCounter.insert(table=ticket_type.table, next_number=ticket_type.first_number)
     .on_conflict_ignore().execute())


# PostgreSQL's statement taking a number and inserting the task with it, by the task INSERT's text.
_NUMBERED_SQL = {}


def insert_numbered_task(ticket_type, **values):
    """Insert a Task of `ticket_type` with its next number, inside a write transaction; returns the row.

    PostgreSQL does it in one statement (a data-modifying WITH: the increment, then the INSERT from
    its result), so one round trip; SQLite, whose WITH cannot change rows, runs allocate_number's
    statement and the INSERT in process. Either way the counter row's lock is taken by the ticket's
    own transaction, so numbers stay gap-free."""
    if is_sqlite():
        return insert_row(Task, number=allocate_number(ticket_type), **values)
    row, sql, params = insert_statement(Task, values)
    numbered = _NUMBERED_SQL.get(sql)
    if numbered is None:
        numbered = _NUMBERED_SQL[sql] = prepared(_numbered(sql))
    for _ in range(2):
        taken = database.execute_sql(numbered, (1, ticket_type.table, *params, ticket_type.prefix)).fetchone()
        if taken:
            row.id, row.number = taken
            row._dirty.clear()
            return row
        _create_counter(ticket_type)
    raise AssertionError("the number counter row vanished")  # pragma: no cover - the insert above creates it


def _numbered(insert_sql):
    """The task INSERT `insert_sql` (`INSERT INTO "task" (...) VALUES (...) RETURNING ...`) as one statement
    that also takes the number: the counter's increment in a WITH, the INSERT selecting from it."""
    head, _, rest = insert_sql.partition(") VALUES (")
    marks = rest.partition(")")[0]
    taken = 'CAST("taken"."next_number" - 1 AS text)'
    # contract.TicketType.format_number: the prefix, then the counter in at least 7 digits.
    number = f"{database.obj.param} || lpad({taken}, GREATEST(7, length({taken})), '0')"
    return (f'WITH "taken" AS ({_increment_sql()}) {head}, "number") SELECT {marks}, {number} FROM "taken" '
            f'RETURNING "id", "number"')
