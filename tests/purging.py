"""Tickets closed long ago and deleted by the retention purge, as the defaults do it: their deliveries go after
90 days, the tickets with their JIT records after 365."""
from datetime import timedelta

from app.jobs import retention
from app.models import IncomingRequest, Task, utcnow


def purge_tickets():
    """Close every ticket 400 days ago, with every delivery received then, and run the purge; returns the
    numbers of the tickets it deleted."""
    long_ago = utcnow() - timedelta(days=400)
    numbers = []
    for task in Task.select():
        Task.update(state=task.ticket_type.closed_state, closed_at=long_ago, updated_at=long_ago).where(
            Task.id == task.id).execute()
        numbers.append(task.number)
    IncomingRequest.update(received_at=long_ago).execute()
    retention.purge()
    assert Task.select().count() == 0, "the closed tickets are past their retention"
    assert IncomingRequest.select().count() == 0, "and so are their deliveries"
    return numbers
