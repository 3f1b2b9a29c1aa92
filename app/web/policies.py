"""The admin policies page: rules in order (create, edit, reorder, dry run, delete), settings, bypass codes.

Deleting a rule and revoking a bypass code ask for confirmation first (app/web/confirmation.py).

A newly issued bypass code is shown once, in the answer to the request that made
it, and the page is kept out of caches; only its last four characters are shown
afterwards.
"""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from app.fields import clean_boolean
from app import contract
from app.errors import BrokerError
from app.itsm.models import ItsmConnection
from app.policies import bypass
from app.policies import rules as policy_rules
from app.policies.matching import MATCHERS
from app.policies.models import (
    OUTCOME_LABELS, PATTERN_REGEX, PATTERN_SERVICENOW, SOURCE_ANY, SOURCE_BROKER, BypassCode, PolicyRule,
    PolicySettings,
)
from app.auth.access import require_page_roles
from app.web.confirmation import Confirmation, ask, is_confirmed
from app.web.forms import field_views, submitted_values

bp = Blueprint("policies", __name__, url_prefix="/admin/policies")

admins = require_page_roles(contract.ROLE_ADMIN)

BOOLEAN_FIELDS = {field.name for field in policy_rules.FIELDS if field.clean is clean_boolean}
TEXTAREA_FIELDS = {"deny_reason"}


def _choices():
    connections = [(c.name, f"ITSM: {c.name}") for c in ItsmConnection.select().order_by(ItsmConnection.name)]
    return {
        "kind": [("", "Any"), *contract.KIND_LABELS.items()],
        "outcome": list(OUTCOME_LABELS.items()),
        "reference_pattern": [(PATTERN_SERVICENOW, "ServiceNow formats"), (PATTERN_REGEX, "Custom regex")],
        "ticket_source": [(SOURCE_ANY, "Any (the broker, then each ITSM)"), (SOURCE_BROKER, "The broker's own tickets"),
                          *connections],
    }


def rule_fields(rule=None, submitted=None, errors=None):
    """One entry per rule field: label, widget, value to show, choices, help, error."""
    stored = {field.name: getattr(rule, field.name) if rule is not None else getattr(PolicyRule, field.name).default
              for field in policy_rules.FIELDS}
    return field_views(policy_rules.FIELDS, stored, submitted, errors, _choices(), BOOLEAN_FIELDS, TEXTAREA_FIELDS)


def rule_row(rule):
    matchers = [(MATCHERS[name], getattr(rule, name)) for name in MATCHERS if getattr(rule, name)]
    return {"rule": rule, "outcome": OUTCOME_LABELS.get(rule.outcome, rule.outcome), "matchers": matchers,
            "checks": rule.checks_enabled() if rule.outcome == "auto_approve" else []}


def _render_index(new_code=None, status=200):
    rules = list(PolicyRule.ordered())
    codes = list(BypassCode.select().order_by(BypassCode.issued_at.desc()).limit(50))
    response = render_template(
        "policies/index.html", rows=[rule_row(rule) for rule in rules], count=len(rules),
        settings=PolicySettings.current(), codes=[(code, bypass.status(code)) for code in codes],
        new_code=new_code, connections=list(ItsmConnection.select().order_by(ItsmConnection.name)),
    )
    # The page may carry a bypass code shown once: keep it out of every cache.
    return response, status, {"Cache-Control": "no-store"}


@bp.get("")
@admins
def index():
    return _render_index()


def _render_form(rule, submitted=None, errors=None, message=None, status=200):
    return render_template("policies/rule_form.html", rule=rule, fields=rule_fields(rule, submitted, errors),
                           message=message), status


@bp.route("/rules/new", methods=["GET", "POST"], endpoint="new_rule")
@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@admins
def edit_rule(rule_id=None):
    rule = policy_rules.find_rule(rule_id) if rule_id is not None else None
    if request.method == "GET":
        return _render_form(rule)
    raw = submitted_values(policy_rules.FIELDS, request.form, BOOLEAN_FIELDS)
    try:
        saved = (policy_rules.update_rule(rule, raw, g.account) if rule is not None
                 else policy_rules.create_rule(raw, g.account))
    except BrokerError as error:
        return _render_form(rule, raw, error.extra.get("fields", {}), error.message, error.status)
    flash(f"Rule {saved.name!r} saved." if rule is not None else
          f"Rule {saved.name!r} added at position {saved.position}.", "ok")
    return redirect(url_for("policies.index"))


@bp.post("/rules/<int:rule_id>/move")
@admins
def move_rule(rule_id):
    rule = policy_rules.find_rule(rule_id)
    direction = request.form.get("direction", "")
    if direction in ("up", "down"):
        position = rule.position - 1 if direction == "up" else rule.position + 1
    else:
        try:
            position = int(request.form.get("position", ""))
        except ValueError:
            flash("Enter the position as a number (1 = first).", "error")
            return redirect(url_for("policies.index"))
    rule = policy_rules.move_rule(rule, max(position, 1), g.account)
    flash(f"Rule {rule.name!r} is now at position {rule.position}.", "ok")
    return redirect(url_for("policies.index"))


@bp.post("/rules/<int:rule_id>/dry-run")
@admins
def toggle_dry_run(rule_id):
    rule = policy_rules.find_rule(rule_id)
    rule = policy_rules.set_rule_dry_run(rule, not rule.dry_run, g.account)
    flash(f"Dry run is {'on' if rule.dry_run else 'off'} for {rule.name!r}.", "ok")
    return redirect(url_for("policies.index"))


def _confirm_delete_rule(rule):
    outcome = OUTCOME_LABELS.get(rule.outcome, rule.outcome)
    return Confirmation(
        f"Delete rule {rule.name!r}?",
        (f"New requests are no longer checked against it: what it matches stops getting \"{outcome}\", and "
         "the next matching rule decides, or an approver does.",
         f"It runs at position {rule.position} of {PolicyRule.select().count()}; the rules below it move up one place.",
         "This cannot be undone; the audit log keeps its name."),
        f"Delete rule {rule.name}", url_for("policies.index"))


@bp.post("/rules/<int:rule_id>/delete")
@admins
def delete_rule(rule_id):
    rule = policy_rules.find_rule(rule_id)
    if not is_confirmed():
        return ask(_confirm_delete_rule(rule))
    policy_rules.delete_rule(rule, g.account)
    flash(f"Rule {rule.name!r} deleted.", "ok")
    return redirect(url_for("policies.index"))


@bp.post("/settings")
@admins
def save_settings():
    try:
        policy_rules.update_settings({
            "dry_run": "true" if request.form.get("dry_run") else "false",
            "exempt_users": request.form.get("exempt_users", ""),
            "system_account": request.form.get("system_account", ""),
        }, g.account)
    except BrokerError as error:
        flash(error.described(), "error")
    else:
        flash("Policy settings saved.", "ok")
    return redirect(url_for("policies.index", _anchor="settings"))


@bp.post("/bypass")
@admins
def issue_bypass():
    try:
        record, code = bypass.issue_code(g.account, request.form.get("label", ""),
                                         bool(request.form.get("single_use")), request.form.get("valid_hours"))
    except BrokerError as error:
        flash(error.message, "error")
        return redirect(url_for("policies.index", _anchor="bypass"))
    return _render_index(new_code={"code": code, "record": record}, status=201)


@bp.post("/bypass/<sys_id>/revoke")
@admins
def revoke_bypass(sys_id):
    record = bypass.find_code(sys_id)
    # An already revoked code needs no confirmation: revoking it again changes nothing and says so.
    if record.revoked_at is None and not is_confirmed():
        return ask(Confirmation(
            f"Revoke bypass code …{record.hint}?",
            ("From now on a JIT reason quoting it no longer counts as a valid ticket reference.",
             "This cannot be undone; issue a new code if one is still needed."),
            f"Revoke code …{record.hint}", url_for("policies.index", _anchor="bypass")))
    try:
        record = bypass.revoke_code(record, g.account)
    except BrokerError as error:
        flash(error.message, "error")
    else:
        flash(f"Bypass code …{record.hint} revoked.", "ok")
    return redirect(url_for("policies.index", _anchor="bypass"))
