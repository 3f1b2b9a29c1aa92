"""The chat outbox: what Slack and Teams show of each ticket, brought up to date by the `send_chat` job (and,
in a request, right after the answer), never inside the transaction that changed the ticket.

`ticket_created` queues a row per enabled service; `ticket_changed` counts a change on the ticket's rows. A
row is claimed for each attempt (app/claims.py), so two processes never post one message twice."""
import logging
from datetime import timedelta

import peewee
from flask import after_this_request, current_app, g, has_app_context, has_request_context

from app import claims, events
from app.chat import blocks, slack, teams
from app.chat.models import (
    SERVICE_NAMES, SERVICE_SLACK, SERVICE_TEAMS, STATUS_FAILED, STATUS_PENDING, STATUS_SENT, STATUS_SKIPPED, ChatPost,
)
from app.db import database, write_transaction
from app.models import Task, utcnow
from app.tickets.documents import ticket_url

log = logging.getLogger(__name__)

RETRY_DELAYS = (10, 30, 60, 120, 300, 600)
MAX_ATTEMPTS = 20
CLAIM_SECONDS = slack.TIMEOUT_SECONDS * 3 + 5
SEND_BATCH = 50


def enabled_services(settings=None):
    """The chat services set up: Slack, Teams, both or none (outside an app there are no settings: none)."""
    if settings is None and not has_app_context():
        return []
    settings = settings or current_app.extensions["settings"]
    return [service for service, on in ((SERVICE_SLACK, slack.slack_enabled(settings)),
                                        (SERVICE_TEAMS, teams.teams_enabled(settings))) if on]


def queue_new_ticket(task, **_):
    """`ticket_created`'s receiver: a row per enabled service, in the creating transaction."""
    services = enabled_services()
    if not services:
        return  # no message to send: nothing to do after the answer either
    for service in services:
        try:
            with database.atomic():  # a savepoint: a duplicate must not abort the caller's transaction
                ChatPost.create(task=task, service=service)
        except peewee.IntegrityError:
            pass
    _send_after_answer(task.id)


def queue_change(task, **_):
    """`ticket_changed`'s receiver: the ticket's chat rows for the enabled services are due again (or once the
    service's Retry-After has passed), in the changing transaction."""
    services = enabled_services()
    if not services:
        return
    if _show_again((ChatPost.task == task.id) & ChatPost.service.in_(services)):
        _send_after_answer(task.id)


def _show_again(rows):
    """Make the chat rows `rows` select due again (once the service's Retry-After has passed, if it asked for one):
    the ticket they show moved on. Returns how many there were."""
    now = utcnow()
    due = peewee.Case(None, ((ChatPost.not_before > now, ChatPost.not_before),), now)
    changed = ChatPost.update(revision=ChatPost.revision + 1, next_attempt_at=due).where(rows).execute()
    if changed:
        # A row being sent stays claimed: its sender sees the new revision and leaves it pending.
        ChatPost.update(status=STATUS_PENDING, attempts=0).where(
            rows, ChatPost.status.in_([STATUS_SENT, STATUS_FAILED, STATUS_SKIPPED])).execute()
    return changed


def _send_after_answer(task_id):
    """In a request, send the ticket's chat rows once the answer is out (the job catches anything left)."""
    if not has_request_context():
        return
    waiting = g.setdefault("chat_tasks_after_answer", set())
    if task_id in waiting:
        return
    waiting.add(task_id)
    app = current_app._get_current_object()

    @after_this_request
    def _later(response):
        response.call_on_close(lambda: send_in_background(app, task_id))
        return response


def send_in_background(app, task_id, before=None):
    """Send one ticket's due chat rows in their own app context and connection (after an answer), after running
    `before` there (a decision's first attempt at EPM, whose outcome the message then shows)."""
    try:
        with app.app_context(), database.connection_context():
            if before is not None:
                before()
            send_ticket(task_id)
    except Exception:  # noqa: BLE001 - runs after the answer was sent: nobody else would see it
        log.exception("sending the chat messages of ticket %s failed", task_id)


def send_ticket(task_id):
    """One attempt for each of the ticket's due chat rows."""
    for row in list(ChatPost.select(ChatPost.id).where(ChatPost.task == task_id, claims.due(ChatPost))):
        send_post(row)


def init_app(app):
    events.ticket_created.connect(queue_new_ticket)
    events.ticket_changed.connect(queue_change)


def _show(post, task):
    """Bring one chat up to date with the ticket."""
    link = ticket_url(task)
    if post.service == SERVICE_SLACK:
        text, ticket_blocks = blocks.summary_text(task), blocks.ticket_blocks(task, link)
        if post.message_ts:
            slack.update_ticket(post.channel_id, post.message_ts, text, ticket_blocks)
            return
        channel_id, ts = slack.post_ticket(text, ticket_blocks)
        if not claims.store_while_claimed(ChatPost, post, channel_id=channel_id, message_ts=ts) \
                and not _adopt(post, channel_id, ts):
            _take_back(post, task, channel_id, ts)
    else:
        teams.send_cards(post, task, link)


def _adopt(post, channel_id, ts):
    """Make the message a late attempt posted the row's when no attempt holds the row and none named a message (the
    attempt that took it over failed before posting one): the next attempt updates it, and the ticket stays in the
    channel meanwhile. True if adopted."""
    adopted = ChatPost.update(channel_id=channel_id, message_ts=ts).where(
        ChatPost.id == post.id, ChatPost.message_ts.is_null(), ChatPost.status != ChatPost.WORKING).execute() == 1
    if adopted:
        log.info("Slack message %s %s of ticket %s, posted by attempt %s after its claim ran out, is the row's: the "
                 "attempt that took it over posted none", channel_id, ts, post.task.number, post.attempts)
    return adopted


def _take_back(post, task, channel_id, ts):
    """Delete the message a late attempt posted (Slack answered after its claim ran out, and a later attempt
    claimed the row meanwhile and posts or posted the message the row names), so the channel holds the ticket's
    message once: the one kept up to date."""
    try:
        slack.delete_message(channel_id, ts)
    except slack.ChatError as error:
        log.warning("Slack message %s %s of ticket %s, posted by attempt %s after its claim ran out, could not be "
                    "deleted and stays in the channel: %s", channel_id, ts, task.number, post.attempts, error)
    else:
        log.info("Slack message %s %s of ticket %s, posted by attempt %s after its claim ran out, was deleted: the "
                 "row names the message of the attempt that took it over", channel_id, ts, task.number,
                 post.attempts)


def send_post(row, rounds=3):
    """Bring a due chat row up to date, if this process wins its claim; returns it re-read. A ticket that moved
    while its message was being sent (another process could not claim the row meanwhile) is sent again at
    once, up to `rounds` times in all; the `send_chat` job takes over after."""
    for _round in range(rounds):
        post = _attempt(row)
        if post.status != STATUS_PENDING or post.next_attempt_at > utcnow():
            break
    return post


def _attempt(row):
    post = claims.claim_attempt(ChatPost, row.id, CLAIM_SECONDS)
    if post is None:
        return ChatPost.get_by_id(row.id)
    if post.service not in enabled_services():
        # Switched off since it was queued: nothing to send it with (the next change once it is back sends it).
        _release(post, status=STATUS_SKIPPED, last_error=f"{SERVICE_NAMES[post.service]} is no longer configured")
        return ChatPost.get_by_id(row.id)
    revision = post.revision
    # This attempt changes the message already in the channel (Slack's chat.update).
    in_place = post.service == SERVICE_SLACK and bool(post.message_ts)
    try:
        _show(post, Task.get_by_id(post.task_id))
    except slack.ChatError as error:
        stored = _record_failure(post, str(error), error.retry_after)
    else:
        with write_transaction():
            stored = _release(post, status=STATUS_SENT, sent_revision=revision, sent_at=utcnow(), last_error=None,
                              not_before=None)
            if stored:
                # Changed while it was being sent: due again, showing the newer ticket.
                ChatPost.update(status=STATUS_PENDING).where(ChatPost.id == post.id,
                                                             ChatPost.revision > ChatPost.sent_revision).execute()
    if in_place and not stored:
        # A late update Slack took (or may have: a lost answer reads as a failure) after the attempt that took the
        # row over showed the ticket: the message may now show the ticket as this attempt read it, older than the
        # row says was sent.
        _show_again(ChatPost.id == post.id)
    return ChatPost.get_by_id(row.id)


def _release(post, **values):
    """Store the outcome `values` of the attempt this process claimed `post` for (claims.release_attempt); False
    when a later attempt claimed it meanwhile (this one outlived its claim: a slow chat service), whose outcome
    stands."""
    if claims.release_attempt(ChatPost, post, **values):
        return True
    log.info("%s chat row %s of ticket %s was claimed by a later attempt meanwhile: the outcome of its attempt %s "
             "is dropped", post.service, post.id, post.task.number, post.attempts)
    return False


def _record_failure(post, reason, retry_after=None):
    """Store the attempt's failure: due again after a growing gap, or failed after MAX_ATTEMPTS; False when a later
    attempt claimed the row meanwhile (_release)."""
    log.warning("%s message for ticket %s failed (attempt %s): %s", post.service, post.task.number, post.attempts,
                reason)
    now = utcnow()
    # What the service asked (its rate limit's Retry-After) holds even when the ticket changes meanwhile.
    not_before = (now + timedelta(seconds=min(retry_after, claims.RETRY_AFTER_LIMIT_SECONDS))
                  if retry_after else None)
    if post.attempts >= MAX_ATTEMPTS:
        return _release(post, status=STATUS_FAILED, last_error=reason[:2000], not_before=not_before)
    delay = claims.retry_delay(RETRY_DELAYS, post.attempts, retry_after)
    return _release(post, status=STATUS_PENDING, last_error=reason[:2000],
                    next_attempt_at=now + timedelta(seconds=delay), not_before=not_before)


def send_due(limit=SEND_BATCH):
    """One attempt for each due chat row; returns how many are now up to date."""
    due = ChatPost.select(ChatPost.id).where(claims.due(ChatPost)).order_by(ChatPost.next_attempt_at).limit(limit)
    return sum(1 for row in list(due) if send_post(row).status == STATUS_SENT)
