"""Claiming a row for work, so exactly one process does it: the decision outbox, notifications,
policy evaluations, the EPM token fetch and the scheduler lease all go through `claim`.

A claim is one conditional UPDATE in its own short transaction: it sets the row's
`claimed_until` (and the caller's `values`) only where nobody holds an unexpired claim,
and the caller won when one row changed. On PostgreSQL a concurrent UPDATE waits for the
row lock and then re-checks the condition; SQLite admits one writer at a time. So one of
any number of claimers wins, across threads, processes and hosts, and nothing stays locked
while the work runs (an HTTP call, an e-mail): a claimer that dies leaves a claim that runs
out, and the next claimer takes it over. An attempt at a queued-work row (claim_attempt) ends
with `release_attempt`, fenced by its claim's expiry, which no other claim of the row has: one
that outlived its claim stores nothing over the attempt that took the row over, nor over one
that claimed it after it was queued again (its attempts counted from 0 again); what it stores
before it ends (`store_while_claimed`) is fenced the same way. A claim's expiry comes from the
database's clock on PostgreSQL, so hosts with skewed clocks agree on when a claim runs out (the
due times queued rows are given are the queuing host's); SQLite serves one host and uses its clock.

`lock_request` is not a claim but a lock held to the end of the caller's transaction: the
one way writers for one EPM RequestId take turns.
"""
import os
import random
import socket
import uuid
from datetime import datetime, timedelta, timezone

from app.db import database, is_sqlite, prepared, send_with_next, write_transaction


def database_now():
    """The current UTC time (naive) by the database's clock on PostgreSQL, this host's on SQLite."""
    if is_sqlite():
        return datetime.now(timezone.utc).replace(tzinfo=None)
    return database.execute_sql("SELECT CAST(clock_timestamp() AT TIME ZONE 'UTC' AS timestamp)").fetchone()[0]


def new_holder_id(role):
    """A name for a claimer that is unique across hosts, processes and restarts: host:pid:role:random."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{role}:{uuid.uuid4().hex[:8]}"


def claim(model, where, seconds, *, holder=None, now=None, **values):
    """Claim the row `where` selects for `seconds`, setting `values` too; True if this caller won it.

    Refused while another claim on the row is unexpired. With `holder` (for rows that
    name their claimer), the holder is recorded and may renew its own claim.
    """
    now = now or database_now()
    free = model.claimed_until.is_null() | (model.claimed_until < now)
    if holder is not None:
        free |= model.holder == holder
        values["holder"] = holder
    with write_transaction():
        won = model.update(claimed_until=now + timedelta(seconds=seconds), **values).where(where, free).execute()
    return won == 1


def release(model, where, **values):
    """End the claim on the row `where` selects, storing `values` (the work's outcome); returns rows changed."""
    with write_transaction():
        return model.update(claimed_until=None, **values).where(where).execute()


def release_attempt(model, row, **values):
    """End the attempt `row` is (as claim_attempt returned it), storing `values` (its outcome), only while its claim
    is still the row's; True if stored.

    An attempt that outlives its claim (a slow call) may find the row claimed again meanwhile (due() counts it
    abandoned), and that later attempt still working or done with it, or the row queued again and claimed anew: the
    late outcome must not overwrite the later one's, nor end its claim. The claim's expiry is the fence: the attempt
    number is not, as queuing a row again counts its attempts from 0 again. In the caller's transaction when there
    is one."""
    return model.update(claimed_until=None, **values).where(_still_claimed(model, row)).execute() == 1


def store_while_claimed(model, row, **values):
    """Store `values` (what the attempt `row` has done so far, such as where it posted a message) only while its
    claim is still the row's, as release_attempt does, without ending the claim; True if stored. In the caller's
    transaction when there is one."""
    return model.update(**values).where(_still_claimed(model, row)).execute() == 1


def _still_claimed(model, row):
    """The attempt `row` (as claim_attempt returned it) still holds its row: WORKING under the expiry it stored."""
    return (model.id == row.id) & (model.status == model.WORKING) & (model.claimed_until == row.claimed_until)


def due(model, now=None):
    """A queued-work row (app.models.QueuedWork) ready for an attempt: pending and due, or
    being worked by a process whose claim ran out (it died)."""
    now = now or database_now()
    return (((model.status == model.PENDING) & (model.next_attempt_at <= now))
            | ((model.status == model.WORKING) & (model.claimed_until < now)))


# The longest wait a Retry-After is followed for: a server asking for more (a date years away, a number of
# hundreds of digits) is asked again after an hour rather than never.
RETRY_AFTER_LIMIT_SECONDS = 3600


def retry_delay(delays, attempts, retry_after=None):
    """Seconds before a queued-work row's next attempt after its `attempts`-th failed: the `delays` schedule
    (its last gap repeating) with ±20% jitter, or the wait the other side asked for (`retry_after`, from a
    Retry-After header) when that is longer, up to RETRY_AFTER_LIMIT_SECONDS."""
    delay = delays[min(attempts, len(delays)) - 1] * random.uniform(0.8, 1.2)
    return max(delay, min(retry_after or 0, RETRY_AFTER_LIMIT_SECONDS))


def claim_attempt(model, row_id, seconds):
    """Claim queued-work row `row_id` for one attempt: WORKING, one more attempt. Returns the row as claimed, its
    `claimed_until` this claim's expiry (release_attempt's fence, even should the row be claimed again before it is
    read), or None when another process holds it or it is not due."""
    now = database_now()
    if not claim(model, (model.id == row_id) & due(model, now), seconds, now=now, status=model.WORKING,
                 attempts=model.attempts + 1):
        return None
    row = model.get_by_id(row_id)
    row.claimed_until = now + timedelta(seconds=seconds)  # what claim() stored
    return row


_REQUEST_LOCK_SQL = prepared("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))")


def lock_request(request_id):
    """Make writers for one EPM RequestId take turns until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock, so an update racing its created
    event (webhook, reconciliation) is always seen by one of them. SQLite's write lock
    already admits one writer at a time.
    """
    if not is_sqlite():
        # Sent with the transaction's next statement: that statement, and each one after it, reads
        # what the RequestId's previous writer committed.
        send_with_next(_REQUEST_LOCK_SQL, (request_id,))
