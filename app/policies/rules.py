"""Creating, changing, ordering and deleting rules, and the global policy settings.

The CLI and the admin page change rules only here, so a rule is checked the same way and every change is audited."""
import re

from app import contract
from app.audit import service as audit
from app.db import write_transaction
from app.errors import BadRequest, Conflict, NotFound
from app.fields import Field, clean_boolean, clean_choice, clean_text, clean_values as clean_fields
from app.itsm import connections
from app.models import Configuration, utcnow
from app.policies import models
from app.policies.matching import MATCHERS
from app.policies.models import PolicyRule, PolicySettings


def _clean_kind(value):
    text = str(value).strip().lower()
    if text in ("", "any"):
        return ""
    if text not in contract.KIND_LABELS:
        raise ValueError(f"choose any, {', '.join(contract.KIND_LABELS)}")
    return text


def _clean_regex(value):
    text = str(value).strip()
    if len(text) > 500:
        raise ValueError("at most 500 characters")
    try:
        re.compile(text)
    except re.error as error:
        raise ValueError(f"does not compile: {error}") from None
    return text


def _clean_source(value):
    text = str(value).strip() or models.SOURCE_ANY
    if text not in (models.SOURCE_ANY, models.SOURCE_BROKER) and connections.find_connection(text) is None:
        raise ValueError(f"{text!r} is not 'any', 'broker' or the name of an ITSM connection")
    return text


def _clean_states(value):
    labels = [label.strip() for label in str(value).split(",") if label.strip()]
    if len(", ".join(labels)) > 500:
        raise ValueError("at most 500 characters")
    return ", ".join(labels)


def _clean_minutes(value):
    low, high = contract.DURATION_LIMITS[contract.DURATION_MINUTES]
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(contract.MSG_MINUTES_RANGE) from None
    if not low <= number <= high:
        raise ValueError(contract.MSG_MINUTES_RANGE)
    return number


_GLOB_HELP = "Optional; case-insensitive glob (* ? [...]) over the whole value, exact without wildcards"

FIELDS = (
    Field("name", "Name", clean_text(100, required=True)),
    Field("enabled", "Enabled", clean_boolean),
    Field("dry_run", "Dry run", clean_boolean, "Record what the rule would do, without doing it"),
    Field("kind", "Kind", _clean_kind, "any, application or admin"),
    *(Field(name, label, clean_text(255), _GLOB_HELP) for name, label in MATCHERS.items() if name != "kind"),
    Field("outcome", "Outcome", clean_choice(tuple(models.OUTCOME_LABELS))),
    Field("reference_pattern", "Ticket reference pattern",
          clean_choice((models.PATTERN_SERVICENOW, models.PATTERN_REGEX)),
          "servicenow: INC, CHG, CTASK, REQ, RITM, PRB, PRJ, PRJTASK, TASK (and SCTASK) + 7 digits; "
          "regex: the custom regex below"),
    Field("custom_regex", "Custom reference regex", _clean_regex,
          "Case-insensitive; a capture group, if any, is the number looked up"),
    Field("ticket_source", "Where the referenced ticket lives", _clean_source,
          "any (the broker, then each enabled ITSM connection), broker, or a connection's name"),
    *(Field(f"check_{check}", f"Check: {label}", clean_boolean)
      for check, label in models.CHECK_LABELS.items()),
    Field("allowed_states", "Allowed states", _clean_states, "Comma-separated state labels, any case"),
    Field("max_duration_minutes", "Maximum duration (minutes)", _clean_minutes,
          "The approval lasts the smaller of this and the time left in the ticket's window"),
    Field("deny_reason", "Denial reason", clean_text(1000),
          "Sent to EPM when this rule denies (auto-deny, a missing reference, or a failed check with "
          "'deny when invalid')"),
    Field("deny_on_failure", "Deny when the ticket is invalid", clean_boolean,
          "Auto-approve only: deny instead of leaving the request to approvers"),
)
FIELDS_BY_NAME = {field.name: field for field in FIELDS}


def clean_values(raw):
    """Check raw values by field name; returns cleaned values or raises BadRequest with `fields`."""
    return clean_fields(FIELDS_BY_NAME, raw, "Invalid policy rule")


def _check_consistent(values):
    """Rules that need more than one field to be right."""
    if values.get("reference_pattern") == models.PATTERN_REGEX and not values.get("custom_regex"):
        raise BadRequest("Invalid policy rule", "custom_regex: required with the regex pattern",
                         extra={"fields": {"custom_regex": "required with the regex pattern"}})


def _rule_detail(rule):
    return {name: getattr(rule, name) for name in FIELDS_BY_NAME}


def find_rule(rule_id):
    rule = PolicyRule.get_or_none(PolicyRule.id == rule_id)
    if rule is None:
        raise NotFound(f"No policy rule {rule_id}")
    return rule


def create_rule(raw, actor, position=None):
    """Add a rule, last unless `position` (1-based) says where; returns it."""
    values = clean_values(raw)
    if "outcome" not in values or "name" not in values:
        missing = {name: "required" for name in ("name", "outcome") if name not in values}
        raise BadRequest("Invalid policy rule", "; ".join(f"{n}: required" for n in missing),
                         extra={"fields": missing})
    _check_consistent({**{f.name: getattr(PolicyRule, f.name).default for f in FIELDS}, **values})
    with write_transaction():
        last = PolicyRule.select().count()
        rule = PolicyRule.create(position=last + 1, **values)
        Configuration.move_version()  # every process asks again whether a rule is enabled
        if position is not None:
            _place(rule, position)
        audit.record("policy_rule_create", actor, "policy_rule", str(rule.id), _rule_detail(rule))
    return PolicyRule.get_by_id(rule.id)


def update_rule(rule, raw, actor):
    values = clean_values(raw)
    merged = {**_rule_detail(rule), **values}
    _check_consistent(merged)
    with write_transaction():
        changed = {name: value for name, value in values.items() if getattr(rule, name) != value}
        PolicyRule.update(updated_at=utcnow(), **values).where(PolicyRule.id == rule.id).execute()
        Configuration.move_version()
        audit.record("policy_rule_update", actor, "policy_rule", str(rule.id), {"changed": changed})
    return PolicyRule.get_by_id(rule.id)


def delete_rule(rule, actor):
    with write_transaction():
        PolicyRule.delete().where(PolicyRule.id == rule.id).execute()
        Configuration.move_version()
        _renumber()
        audit.record("policy_rule_delete", actor, "policy_rule", str(rule.id), {"name": rule.name})


def _renumber(order=None):
    rules = order if order is not None else list(PolicyRule.ordered())
    for index, rule in enumerate(rules, start=1):
        if rule.position != index:
            PolicyRule.update(position=index).where(PolicyRule.id == rule.id).execute()


def _place(rule, position):
    rules = [r for r in PolicyRule.ordered() if r.id != rule.id]
    index = max(1, min(int(position), len(rules) + 1)) - 1
    rules.insert(index, rule)
    _renumber(rules)


def move_rule(rule, position, actor):
    """Put `rule` at `position` (1-based; clamped to the list), shifting the others."""
    with write_transaction():
        before = rule.position
        _place(rule, position)
        rule = PolicyRule.get_by_id(rule.id)
        audit.record("policy_rule_move", actor, "policy_rule", str(rule.id), {"from": before, "to": rule.position})
    return rule


def set_rule_dry_run(rule, dry_run, actor):
    return update_rule(rule, {"dry_run": "true" if dry_run else "false"}, actor)


def _clean_system_account(value):
    name = clean_text(150, required=True)(value)
    if any(c.isspace() or c == ":" for c in name):
        raise ValueError("a user name without spaces or ':'")
    return name


SETTINGS_FIELDS = {field.name: field for field in (
    Field("dry_run", "Global dry run", clean_boolean),
    Field("exempt_users", "Exempt users", clean_text(4000)),
    Field("system_account", "System account", _clean_system_account),
)}


def update_settings(raw, actor):
    """Change the global policy settings (global dry run, exempt users, system identity name)."""
    cleaned = clean_fields(SETTINGS_FIELDS, raw, "Invalid policy settings", what="setting")
    with write_transaction():
        settings = PolicySettings.current()
        PolicySettings.update(updated_at=utcnow(), **cleaned).where(PolicySettings.id == settings.id).execute()
        audit.record("policy_settings_update", actor, "policy_settings", settings.name, cleaned)
    return PolicySettings.current()


def rename_ticket_source(connection, new_name):
    """Rules that check against a renamed ITSM connection follow it to its new name."""
    PolicyRule.update(ticket_source=new_name).where(PolicyRule.ticket_source == connection.name).execute()


def keep_ticket_source(connection):
    """Refuse to delete an ITSM connection while a rule names it as its ticket source."""
    users = list(PolicyRule.ordered().where(PolicyRule.ticket_source == connection.name))
    if users:
        names = ", ".join(f"#{rule.id} {rule.name!r}" for rule in users)
        raise Conflict(f"ITSM connection {connection.name!r} is the ticket source of rule {names}",
                       "point those rules elsewhere first")
