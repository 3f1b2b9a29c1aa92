"""app/claims.py: one winner among concurrent claimers, and a claim that ran out is taken over,
on SQLite and PostgreSQL."""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from app import claims
from app.db import database
from app.epm.models import EpmToken
from app.models import Task
from app.notify.models import CHANNEL_EMAIL, KIND_TICKET_CREATED, STATUS_SENDING, STATUS_SENT, Notification
from tests import factories

CLAIMERS = 8


def race(app, attempt):
    """Run `attempt(i)` in CLAIMERS threads, each on its own connection, released together."""
    database.close()  # this thread's connection must not hold a write turn while the others race
    start = threading.Barrier(CLAIMERS)

    def run(index):
        with app.app_context(), database.connection_context():
            start.wait(10)
            return attempt(index)

    with ThreadPoolExecutor(CLAIMERS) as pool:
        return list(pool.map(run, range(CLAIMERS)))


def test_one_of_many_concurrent_claimers_wins_the_row(app):
    EpmToken.insert(key="k").execute()

    won = race(app, lambda index: claims.claim(EpmToken, EpmToken.key == "k", 60, holder=f"host:{index}"))

    assert won.count(True) == 1
    assert EpmToken.get().holder == f"host:{won.index(True)}"


def test_a_claim_is_refused_while_it_runs_and_taken_over_once_it_ran_out(app):
    EpmToken.insert(key="k").execute()
    assert claims.claim(EpmToken, EpmToken.key == "k", 60, holder="died")
    assert not claims.claim(EpmToken, EpmToken.key == "k", 60, holder="other")

    later = claims.database_now() + timedelta(seconds=61)  # the dead holder's claim ran out
    assert claims.claim(EpmToken, EpmToken.key == "k", 60, holder="other", now=later)
    assert EpmToken.get().holder == "other"


def test_a_released_claim_is_free_at_once_and_keeps_the_outcome(app):
    EpmToken.insert(key="k").execute()
    assert claims.claim(EpmToken, EpmToken.key == "k", 60, holder="a")
    assert claims.release(EpmToken, EpmToken.key == "k", holder=None, generation=3) == 1
    assert EpmToken.get().generation == 3
    assert claims.claim(EpmToken, EpmToken.key == "k", 60, holder="b")


def test_one_attempt_per_due_row_however_many_workers_try(app, deliver):
    deliver(factories.admin_request())
    notification = Notification.create(task=Task.get(), kind=KIND_TICKET_CREATED, channel=CHANNEL_EMAIL)

    won = race(app, lambda _index: claims.claim_attempt(Notification, notification.id, 60))

    [claimed] = [row for row in won if row is not None]
    assert claimed.claimed_until > claims.database_now()
    row = Notification.get_by_id(notification.id)
    assert row.claimed_until == claimed.claimed_until, "the row as claimed: its claim's expiry is its fence"
    assert (row.status, row.attempts) == (STATUS_SENDING, 1)


def test_a_row_abandoned_mid_attempt_is_claimed_again_once_its_claim_ran_out(app, deliver):
    deliver(factories.admin_request())
    notification = Notification.create(task=Task.get(), kind=KIND_TICKET_CREATED, channel=CHANNEL_EMAIL)
    assert claims.claim_attempt(Notification, notification.id, 60)
    assert not claims.claim_attempt(Notification, notification.id, 60), "its worker is still on it"

    Notification.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()  # the worker died

    assert claims.claim_attempt(Notification, notification.id, 60)
    assert Notification.get_by_id(notification.id).attempts == 2


def test_an_attempt_that_outlived_its_claim_still_stores_its_outcome_when_nobody_took_the_row_over(app, deliver):
    deliver(factories.admin_request())
    notification = Notification.create(task=Task.get(), kind=KIND_TICKET_CREATED, channel=CHANNEL_EMAIL)
    attempt = claims.claim_attempt(Notification, notification.id, 0)  # a claim that runs out as it is made
    assert attempt is not None
    assert claims.database_now() >= attempt.claimed_until, "the attempt outlived its claim"
    assert Notification.select().where(claims.due(Notification)).count() == 1, "anyone could take it over now"

    assert claims.release_attempt(Notification, attempt, status=STATUS_SENT, last_error=None)

    row = Notification.get_by_id(notification.id)
    assert (row.status, row.claimed_until, row.attempts) == (STATUS_SENT, None, 1)
    assert not Notification.select().where(claims.due(Notification)).exists(), "sent: nothing left to attempt"


def test_what_an_attempt_stores_before_it_ends_is_kept_only_while_it_holds_the_row(app, deliver):
    deliver(factories.admin_request())
    notification = Notification.create(task=Task.get(), kind=KIND_TICKET_CREATED, channel=CHANNEL_EMAIL)
    late = claims.claim_attempt(Notification, notification.id, 60)
    assert claims.store_while_claimed(Notification, late, last_error="half done")
    assert Notification.get_by_id(notification.id).claimed_until == late.claimed_until, "still its claim"

    Notification.update(claimed_until=claims.database_now() - timedelta(seconds=1)).execute()  # it outlived it
    later = claims.claim_attempt(Notification, notification.id, 60)

    assert not claims.store_while_claimed(Notification, late, last_error="late")
    row = Notification.get_by_id(notification.id)
    assert (row.last_error, row.claimed_until) == ("half done", later.claimed_until)
