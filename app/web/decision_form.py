"""The decision form: its fields, their defaults, and the rules the browser checks before submit.

The browser's script reads the limits and the contract's messages from data-
attributes this module prepares, so the browser and the server (app.decisions,
the authority) say the same thing.
"""
from flask import flash, redirect, render_template, url_for

from app import contract
from app.decisions import approvals
from app.decisions.rules import requested_duration
from app.errors import BadRequest, Conflict
from app.tickets.documents import ticket_url
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


def submit(task, decision, values, account, authenticated_at=None):
    """Record `account`'s decision from the form's `values`: back to the ticket, or the form again with the refusal.
    `authenticated_at`: when the identity provider last authenticated the person (approvals.submit_decision)."""
    is_approval = decision == contract.DECISION_APPROVED
    try:
        # A policy may require two approvers: the first approval is then stored, not sent.
        recorded = approvals.submit_decision(
            task, account, decision, values["reason"],
            values["duration_unit"] if is_approval else None,
            values["duration_value"] if is_approval else None,
            ticket_url(task), authenticated_at=authenticated_at,
        )
    except (BadRequest, Conflict) as error:
        errors = error.extra.get("fields", {}) if isinstance(error, BadRequest) else {}
        view = form_view(task, decision, values, errors=errors, message=error.message)
        return render_template("tickets/decision.html", **view), error.status
    if isinstance(recorded, approvals.PendingApproval):
        flash("First approval recorded. A second approver must approve before the decision goes to EPM.", "ok")
        return redirect(url_for("web_tickets.ticket", number=task.number))
    flash(f"{recorded.decision}: {labels.DELIVERY_LABELS.get(recorded.status, recorded.status)}.",
          "error" if recorded.status == contract.DELIVERY_FAILED else "ok")
    return redirect(url_for("web_tickets.ticket", number=task.number))
