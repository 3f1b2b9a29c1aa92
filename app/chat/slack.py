"""Talking to Slack's Web API through slack_sdk's WebClient, and who a Slack user is in the broker.

A Slack user is the active account whose e-mail address is the one Slack's `users.info` gives (the app needs
the `users:read.email` scope), unless an admin linked the Slack user to an account (SlackLink), which wins."""
import logging

from flask import current_app
from peewee import fn
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from app import egress
from app.chat.models import SlackLink
from app.models import Account

log = logging.getLogger(__name__)

# A job's call may wait this long; a call made while Slack waits for our answer (3 s in all) much less.
TIMEOUT_SECONDS = 10
INTERACTION_TIMEOUT_SECONDS = 2


class ChatError(Exception):
    """A chat service could not be used; the message says why (never with a token, secret or webhook URL).
    `retry_after`: the seconds the service asked to be left alone (Retry-After, as on its rate limits), or None."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


def _settings():
    return current_app.extensions["settings"]


def slack_enabled(settings=None):
    """Slack is on when the bot token, the signing secret and the channel are all set."""
    settings = settings or _settings()
    return bool(settings.slack_bot_token and settings.slack_signing_secret and settings.slack_channel)


def client(timeout=TIMEOUT_SECONDS):
    settings = _settings()
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else f"{settings.slack_api_url}/"
    return WebClient(token=settings.slack_bot_token, base_url=base_url, timeout=timeout)


def call(method, timeout=TIMEOUT_SECONDS, **arguments):
    """Call Web API `method` (`chat_postMessage`, ...); returns Slack's answer as a dict, or raises ChatError
    naming Slack's error code."""
    try:
        return getattr(client(timeout), method)(**arguments).data
    except SlackApiError as error:
        code = error.response.get("error") if error.response is not None else None
        wait = egress.retry_after(error.response.headers) if error.response is not None else None
        raise ChatError(f"Slack refused {method}: {code or error.response.status_code}", wait) from None
    except SlackClientError as error:
        raise ChatError(f"could not reach Slack for {method}: {error.__class__.__name__}") from None
    except OSError as error:
        raise ChatError(f"could not reach Slack for {method}: {error.__class__.__name__}") from None


def post_ticket(text, blocks):
    """Post a ticket's message to the configured channel; returns (channel id, message ts)."""
    answer = call("chat_postMessage", channel=_settings().slack_channel, text=text, blocks=blocks,
                  unfurl_links=False, unfurl_media=False)
    return answer["channel"], answer["ts"]


def update_ticket(channel_id, ts, text, blocks):
    call("chat_update", channel=channel_id, ts=ts, text=text, blocks=blocks)


def delete_message(channel_id, ts):
    """Delete a message the bot posted (chat.delete, under the chat:write scope that posted it)."""
    call("chat_delete", channel=channel_id, ts=ts)


def open_view(trigger_id, view):
    """Open a modal; Slack's trigger id is good for 3 seconds, so this runs inside the interaction's request."""
    call("views_open", timeout=INTERACTION_TIMEOUT_SECONDS, trigger_id=trigger_id, view=view)


def tell(channel_id, user_id, text):
    """An ephemeral message only `user_id` sees in `channel_id`."""
    call("chat_postEphemeral", timeout=INTERACTION_TIMEOUT_SECONDS, channel=channel_id, user=user_id, text=text)


def user_email(user_id):
    """The e-mail address on the Slack user's profile, or "" when Slack shows none."""
    answer = call("users_info", timeout=INTERACTION_TIMEOUT_SECONDS, user=user_id)
    return ((answer.get("user") or {}).get("profile") or {}).get("email") or ""


def account_for(user_id):
    """(account, how it was found) for Slack user `user_id`: the admin's link, else the e-mail; (None, the
    e-mail looked up) when no active account matches."""
    link = SlackLink.get_or_none(SlackLink.slack_user_id == user_id)
    if link is not None:
        account = Account.get_or_none(Account.id == link.account_id)
        return (account if account is not None and account.active else None), "link"
    email = user_email(user_id).strip()
    if not email:
        return None, ""
    active = Account.active == True  # noqa: E712
    matches = list(Account.select().where(fn.LOWER(Account.email) == email.lower(), active).limit(2))
    # Two accounts with one address: nobody can tell which is meant, so neither decides from Slack.
    return (matches[0] if len(matches) == 1 else None), email
