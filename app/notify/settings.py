"""An account's notification settings: the e-mail address its notifications go to and its
assignment groups. Set from the users page and `jitbroker users set`; every change is audited."""
from app.audit import service as audit
from app.db import write_transaction
from app.errors import BadRequest
from app.models import Account
from app.notify.recipients import format_groups

AUDIT_ACTION = "user_notification_settings"
EMAIL_MAX_LENGTH = 254


def clean_email(value):
    """`value` trimmed; empty clears the address. BadRequest for anything that is not one address."""
    text = (value or "").strip()
    if text and (len(text) > EMAIL_MAX_LENGTH or "@" not in text
                 or any(character.isspace() or character in ",;<>\"" for character in text)):
        raise BadRequest(f"{value!r} is not an e-mail address", extra={"field": "email"})
    return text


def clean_groups(value):
    """The groups in `value` (comma-separated), trimmed, without empties or repeats."""
    text = format_groups(value or "")
    if len(text) > Account.groups.max_length:
        raise BadRequest(f"Assignment groups: at most {Account.groups.max_length} characters",
                         extra={"field": "groups"})
    return text


def set_notification_settings(account, actor, email=None, groups=None, source_address=None):
    """Store `email` and/or `groups` (None leaves one as it is) on `account`; returns {field: {old, new}},
    audited when anything changed."""
    new_values = {}
    if email is not None:
        new_values["email"] = clean_email(email)
    if groups is not None:
        new_values["groups"] = clean_groups(groups)
    with write_transaction():
        stored = Account.get_by_id(account.id)
        changes = {name: {"old": getattr(stored, name), "new": value} for name, value in new_values.items()
                   if getattr(stored, name) != value}
        if changes:
            Account.change(account.id, **{name: change["new"] for name, change in changes.items()})
            audit.record(AUDIT_ACTION, actor, "account", stored.username, changes, source_address=source_address)
    return changes
