"""The decision form: its fields, their defaults, and the rules the browser checks before submit.

The browser's script reads the limits and the contract's messages from data-
attributes this module prepares, so the browser and the server (app.decisions,
the authority) say the same thing.
"""
from app import contract
from app.decisions.rules import requested_duration
from app.web import labels

FIELD_NAMES = ("reason", "duration_unit", "duration_value")


def unit_choices():
    """(value, label) for Once, Minutes and Hours, with each unit's range shown."""
    choices = [(contract.DURATION_ONCE, labels.DURATION_UNIT_LABELS[contract.DURATION_ONCE])]
    for unit, (low, high) in contract.DURATION_LIMITS.items():
        choices.append((unit, f"{labels.DURATION_UNIT_LABELS[unit]} ({low}–{high})"))
    return choices


def validation_attributes():
    """data- attributes for the form element: each unit's limits and every message."""
    attributes = {"data-msg-reason": contract.MSG_REASON_REQUIRED, "data-unit-once": contract.DURATION_ONCE}
    for unit, (low, high) in contract.DURATION_LIMITS.items():
        attributes[f"data-min-{unit}"] = str(low)
        attributes[f"data-max-{unit}"] = str(high)
        attributes[f"data-msg-{unit}"] = contract.DURATION_MESSAGES[unit]
    return attributes


def form_values(form=None, requested=None):
    """What the fields hold: the submitted values; for a new form the `requested` duration, else Once."""
    form = form or {}
    unit, value = requested_duration(requested) or (contract.DURATION_ONCE, "")
    return {
        "reason": form.get("reason", ""),
        "duration_unit": form.get("duration_unit", unit),
        "duration_value": form.get("duration_value", value),
    }


def form_view(task, decision, values, errors=None, message=None):
    """Everything the decision form template displays."""
    return {
        "task": task,
        "decision": decision,
        "slug": labels.DECISION_SLUGS[decision],
        "title": labels.ACTION_LABELS[(decision, task.kind)],
        "is_approval": decision == contract.DECISION_APPROVED,
        "values": values,
        "errors": errors or {},
        "message": message,
        "units": unit_choices(),
        "validation": validation_attributes(),
    }
