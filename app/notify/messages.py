"""The text of ticket notifications, for e-mail and for chat webhooks.

Everything EPM supplied is flattened to one plain line and chat markup is escaped, so a value can add
no e-mail header and become no link, mention or HTML."""
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from app import contract
from app.fields import clipped, duration_words
from app.logs.redaction import MASK, redact
from app.notify.models import KIND_SLA_REMINDER
from app.tickets.documents import ticket_url

SUBJECT_PREFIX = "[JIT Broker]"
# A webhook address's path segment or query value this long may be its secret (webhook_answer).
_SECRET_LOOKING = 8
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def plain(value, limit=500):
    """`value` as one line of plain text, at most `limit` characters."""
    text = _CONTROL.sub(" ", str(value if value is not None else "")).strip()
    text = re.sub(r" {2,}", " ", text)
    return clipped(text, limit)


def webhook_answer(answer, url, limit=200):
    """A failing chat webhook's answer as it may be stored and shown (plain, at most `limit` characters):
    redacted, and without the webhook's address should the answer echo it, whole or in part. The address is
    the secret: Slack's holds a token in its path, a Teams workflow's a signature in its query."""
    answer = redact(answer or "")
    parts = urlsplit(url)
    echoed = [url, parts.path + (f"?{parts.query}" if parts.query else ""), parts.query]
    echoed += [segment for segment in parts.path.split("/") if len(segment) >= _SECRET_LOOKING]
    echoed += [value for _name, value in parse_qsl(parts.query) if len(value) >= _SECRET_LOOKING]
    for text in sorted(echoed, key=len, reverse=True):
        if len(text) > 1:
            answer = answer.replace(text, MASK)
    return plain(answer, limit)


def chat_escape(text):
    """Escape what Slack and Teams treat as markup: `<…>` links and mentions, and Markdown's `[label](url)`,
    broken by a space between `]` and `(`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("](", "] (")


@dataclass(frozen=True)
class Message:
    subject: str
    body: str

    @property
    def chat_text(self):
        return chat_escape(f"{self.subject}\n{self.body}")


def _details(task):
    jit = task.jit_request
    rows = [
        ("Ticket", task.number),
        ("Request", contract.KIND_LABELS[task.kind]),
        ("Requested by", task.requester),
        ("Host", task.host),
        ("Application" if task.kind == contract.KIND_APPLICATION else "Access", task.subject),
        ("Publisher", task.publisher),
        ("Requested duration", duration_words(task.requested_duration)),
        ("Reason", jit.reason),
        ("Assignment group", task.assignment_group),
        ("Opened", f"{task.opened_at:%Y-%m-%d %H:%M} UTC"),
    ]
    return [f"{label}: {plain(value, 1000)}" for label, value in rows if value]


def ticket_message(task, kind, waited_minutes=None):
    """The subject and body telling approvers about `task` (new, or still waiting after the SLA)."""
    summary = plain(task.short_description, 160)
    if kind == KIND_SLA_REMINDER:
        subject = f"{SUBJECT_PREFIX} Reminder: {task.number} is still waiting for a decision"
        opening = (f"This request has been waiting for a decision for more than {waited_minutes} minutes."
                   if waited_minutes else "This request is still waiting for a decision.")
    else:
        subject = f"{SUBJECT_PREFIX} {task.number} needs a decision: {summary}"
        opening = "A new just-in-time access request is waiting for a decision."
    lines = [opening, "", *_details(task)]
    lines += ["", f"Decide at: {ticket_url(task)}"]
    return Message(plain(subject, 250), "\n".join(lines) + "\n")


def test_message():
    return Message(f"{SUBJECT_PREFIX} Test notification",
                   "This is a test notification from JIT Broker. Ticket notifications will arrive like this.\n")
