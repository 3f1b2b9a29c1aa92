"""Confirmation before a destructive action: the action's own POST, sent without `confirmed=yes`, answers
a page naming what will happen, with Confirm (the same POST again, confirmed) and Cancel (a link back).

Server-rendered, so it needs no script under the Content-Security-Policy and works from the keyboard;
the confirming form carries its CSRF token like every other form. A POST that skips the page (a stale
form, a hand-made request) gets the page, never the action.
"""
from typing import NamedTuple

from flask import render_template, request

CONFIRM_FIELD = "confirmed"
CONFIRM_VALUE = "yes"


class Confirmation(NamedTuple):
    """What the confirmation page says: the question, what will happen, the button, where Cancel goes,
    and the form fields the confirmed POST must send again (e.g. `active=false`)."""

    question: str
    consequences: tuple
    confirm_label: str
    cancel_url: str
    carry: dict = None


def is_confirmed():
    """Whether the request being answered came from the confirmation page's Confirm button."""
    return request.form.get(CONFIRM_FIELD) == CONFIRM_VALUE


def ask(confirmation):
    """The confirmation page for the POST being answered; Confirm sends it again to the same URL."""
    return render_template("confirm.html", confirmation=confirmation, action=request.path,
                           confirm_field=CONFIRM_FIELD, confirm_value=CONFIRM_VALUE), 200, {"Cache-Control": "no-store"}
