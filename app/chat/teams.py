"""Microsoft Teams through a Workflows webhook: an Adaptive Card per new ticket with an "Open ticket" action,
and a second card once its decision is final (such a webhook posts; it cannot change a card it posted).

The card is Adaptive Card schema 1.4 inside the message envelope the Workflows "Post to a channel when a
webhook request is received" template reads; Teams refuses a message over 28 KB."""
import json

import requests
from flask import current_app

from app import contract, egress
from app.chat import status
from app.chat.blocks import facts, what_is_requested
from app.chat.models import ChatPost
from app.chat.slack import ChatError
from app.notify.messages import chat_escape, plain, webhook_answer

SCHEMA_VERSION = "1.4"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
SIZE_LIMIT_BYTES = 28 * 1024
TIMEOUT_SECONDS = 10


def teams_enabled(settings=None):
    settings = settings or current_app.extensions["settings"]
    return bool(settings.teams_webhook_url)


def _text(value, limit=300):
    return chat_escape(plain(value, limit)) if value not in (None, "") else "—"


def _card(title, task, link, lines):
    body = [
        {"type": "TextBlock", "text": _text(title, 150), "weight": "Bolder", "size": "Medium", "wrap": True},
        {"type": "FactSet", "facts": [{"title": label, "value": _text(value)} for label, value in lines]},
    ]
    return {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
            "version": SCHEMA_VERSION, "body": body,
            "actions": [{"type": "Action.OpenUrl", "title": "Open ticket", "url": link}],
        }}],
    }


def created_card(task, link):
    """The new ticket's card: who, where, what, why, for how long, the policies."""
    title = f"{task.number}: {contract.KIND_LABELS[task.kind]} request from {task.requester or 'unknown'}"
    return _card(title, task, link, [*facts(task), ("Reason", task.jit_request.reason)])


def final_card(task, link):
    """The card saying the decision is final, and how it went."""
    title = f"{task.number}: decision final"
    lines = [("Requested by", task.requester), ("Host", task.host), ("What", what_is_requested(task))]
    lines += [("Outcome", "; ".join(status.progress_lines(task)))]
    return _card(title, task, link, lines)


def post(card):
    """POST `card` to the webhook; ChatError (never with the URL, which carries the webhook's signature)."""
    url = current_app.extensions["settings"].teams_webhook_url
    body = json.dumps(card)
    if len(body.encode()) > SIZE_LIMIT_BYTES:
        raise ChatError(f"the Teams card is {len(body.encode())} bytes, over Teams' {SIZE_LIMIT_BYTES}")
    try:
        # Only where app/egress.py allows, checked on the address connected to.
        with egress.checked_session() as session:
            response = session.post(url, data=body, headers={"Content-Type": "application/json"},
                                    timeout=TIMEOUT_SECONDS, allow_redirects=False)
    except egress.EgressRefused as error:
        raise ChatError(f"refused to call the Teams webhook: {error}") from None
    except requests.RequestException as error:
        raise ChatError(f"could not reach the Teams webhook: {error.__class__.__name__}") from None
    if not 200 <= response.status_code < 300:
        raise ChatError(f"the Teams webhook answered HTTP {response.status_code}: {webhook_answer(response.text, url)}",
                        egress.retry_after(response.headers))


def send_cards(post_row, task, link):
    """Send whichever of the ticket's two cards is due, each marked sent on `post_row` as soon as Teams took it
    (so a failure of the second never sends the first again).

    The marks are not fenced by the attempt's claim (claims.store_while_claimed), unlike Slack's message: a
    Workflows webhook cannot delete or change a card, so a card an attempt posted after its claim ran out stays
    in the channel, and its mark says so to whichever attempt holds the row now, which then does not post it
    again (it may already have, having claimed the row before the mark). A mark is only ever set, never
    cleared, so a late one cannot undo what the current attempt stored."""
    if not post_row.created_card_sent:
        post(created_card(task, link))
        ChatPost.update(created_card_sent=True).where(ChatPost.id == post_row.id).execute()
    if not post_row.final_card_sent and status.is_final(task):
        post(final_card(task, link))
        ChatPost.update(final_card_sent=True).where(ChatPost.id == post_row.id).execute()
