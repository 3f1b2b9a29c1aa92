"""Ticket numbers: a prefix and a 7-digit counter per task table, gap-free and unique.

The counter is incremented in the ticket's own transaction: its lock orders concurrent requests,
and a rolled-back ticket gives its number back."""
from app.models import NumberCounter


def allocate_number(ticket_type):
    """Take the next number for `ticket_type`; call inside a write transaction."""
    # One statement in the common case (the counter row exists): the increment returns the
    # number it moved past. Both SQLite (3.35+) and PostgreSQL know UPDATE ... RETURNING.
    for _ in range(2):
        taken = list(NumberCounter
                     .update(next_number=NumberCounter.next_number + 1)
                     .where(NumberCounter.table == ticket_type.table)
                     .returning(NumberCounter.next_number)
                     .tuples()
                     .execute())
        if taken:
            return ticket_type.format_number(taken[0][0] - 1)
        (NumberCounter.insert(table=ticket_type.table, next_number=ticket_type.first_number)
         .on_conflict_ignore().execute())
    raise AssertionError("the number counter row vanished")  # pragma: no cover - the insert above creates it
