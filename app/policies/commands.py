"""`jitbroker policy …`: list, add, change, remove and move rules, dry run, settings and bypass codes."""
import click
from flask.cli import with_appcontext

from app.audit import service as audit
from app.db import database
from app.itsm.commands import assignments, connected
from app.policies import bypass
from app.policies import rules as policy_rules
from app.policies.matching import MATCHERS
from app.policies.models import OUTCOME_LABELS, BypassCode, PolicyRule, PolicySettings


def describe_rule(rule):
    """One line per rule: position, id, state, outcome, and the matchers it sets."""
    flags = [] if rule.enabled else ["disabled"]
    if rule.dry_run:
        flags.append("dry-run")
    matchers = [f"{name}={getattr(rule, name)}" for name in MATCHERS if getattr(rule, name)]
    return "\t".join([f"{rule.position}.", f"#{rule.id}", rule.name, rule.outcome, ",".join(flags) or "active",
                      " ".join(matchers) or "(every request)"])


policy = click.Group("policy", help="Validation policies on JIT requests: rules, dry run, bypass codes.")


@policy.command("list")
@with_appcontext
def policy_list():
    """The rules in the order they run, then the global settings."""
    with database.connection_context():
        rules = list(PolicyRule.ordered())
        settings = PolicySettings.current()
        for rule in rules:
            click.echo(describe_rule(rule))
        if not rules:
            click.echo("No policy rules: every request is left to approvers.")
        click.echo(f"global dry run: {'on' if settings.dry_run else 'off'}; exempt users: "
                   f"{', '.join(settings.exempt_patterns) or 'none'}; system identity: {settings.system_account}")


@policy.command("add")
@click.argument("name")
@click.argument("outcome", type=click.Choice(list(OUTCOME_LABELS)))
@click.argument("settings", nargs=-1)
@click.option("--position", type=int, help="Where it goes (1 = first); last by default.")
@with_appcontext
def policy_add(name, outcome, settings, position):
    """Add a rule: `jitbroker policy add "Std changes" auto_approve kind=application publisher='Example*'`."""
    values = {"name": name, "outcome": outcome, **assignments(settings)}
    with connected():
        rule = policy_rules.create_rule(values, audit.cli_actor(), position)
        click.echo(f"Added rule #{rule.id} at position {rule.position}: {rule.name}")


@policy.command("set")
@click.argument("rule_id", type=int)
@click.argument("settings", nargs=-1, required=True)
@with_appcontext
def policy_set(rule_id, settings):
    """Change a rule's fields: `jitbroker policy set 3 check_window=false max_duration_minutes=30`."""
    with connected():
        rule = policy_rules.update_rule(policy_rules.find_rule(rule_id), assignments(settings),
                                        audit.cli_actor())
        click.echo(f"Updated rule #{rule.id}: {rule.name}")


@policy.command("remove")
@click.argument("rule_id", type=int)
@with_appcontext
def policy_remove(rule_id):
    """Delete a rule."""
    with connected():
        rule = policy_rules.find_rule(rule_id)
        policy_rules.delete_rule(rule, audit.cli_actor())
        click.echo(f"Removed rule #{rule_id}: {rule.name}")


@policy.command("move")
@click.argument("rule_id", type=int)
@click.argument("position", type=click.IntRange(min=1))
@with_appcontext
def policy_move(rule_id, position):
    """Move a rule to a position (1 = first)."""
    with connected():
        rule = policy_rules.move_rule(policy_rules.find_rule(rule_id), position, audit.cli_actor())
        click.echo(f"Rule #{rule.id} is now at position {rule.position}.")


@policy.command("dry-run")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.argument("rule_id", type=int, required=False)
@with_appcontext
def policy_dry_run(state, rule_id):
    """Turn dry run on or off for one rule, or for every rule when no rule is named."""
    with connected():
        if rule_id is None:
            policy_rules.update_settings({"dry_run": state}, audit.cli_actor())
            click.echo(f"Global dry run is {state}.")
        else:
            rule = policy_rules.set_rule_dry_run(policy_rules.find_rule(rule_id), state == "on",
                                                 audit.cli_actor())
            click.echo(f"Dry run is {state} for rule #{rule.id}: {rule.name}")


@policy.command("settings")
@click.argument("settings", nargs=-1)
@with_appcontext
def policy_settings(settings):
    """Show, or set, `dry_run`, `exempt_users` (globs, comma-separated) and `system_account`."""
    with connected():
        record = (policy_rules.update_settings(assignments(settings), audit.cli_actor()) if settings
                  else PolicySettings.current())
        click.echo(f"dry_run = {'true' if record.dry_run else 'false'}")
        click.echo(f"exempt_users = {', '.join(record.exempt_patterns)}")
        click.echo(f"system_account = {record.system_account}")


codes = click.Group("bypass", help="Failsafe bypass codes: a reason quoting a valid code counts as a valid ticket.")
policy.add_command(codes)


@codes.command("issue")
@click.option("--label", default="", help="Why the code exists (e.g. the outage it covers).")
@click.option("--single-use/--reusable", default=True, show_default=True)
@click.option("--valid-hours", type=float, help="Hours until it expires; required for a reusable code.")
@with_appcontext
def bypass_issue(label, single_use, valid_hours):
    """Issue a code; it is shown this once."""
    with connected():
        record, code = bypass.issue_code(audit.cli_actor(), label, single_use, valid_hours)
    expiry = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ""
    click.echo(f"Bypass code {code} ({'single use' if record.single_use else 'reusable'}{expiry}); id {record.sys_id}")


@codes.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include used, expired and revoked codes.")
@with_appcontext
def bypass_list(show_all):
    """Codes by their last four characters: status, kind, expiry, uses."""
    with database.connection_context():
        rows = [code for code in BypassCode.select().order_by(BypassCode.issued_at.desc())
                if show_all or bypass.status(code) == "active"]
        for code in rows:
            click.echo("\t".join([code.sys_id, f"…{code.hint}", bypass.status(code),
                                  "single use" if code.single_use else "reusable",
                                  f"expires {code.expires_at:%Y-%m-%d %H:%M}" if code.expires_at else "no expiry",
                                  f"uses={code.used_count}", code.label]))
    if not rows:
        click.echo("No bypass codes.")


@codes.command("revoke")
@click.argument("sys_id")
@with_appcontext
def bypass_revoke(sys_id):
    """Revoke a code by its id (from `policy bypass list`)."""
    with connected():
        record = bypass.revoke_code(bypass.find_code(sys_id), audit.cli_actor())
    click.echo(f"Revoked bypass code …{record.hint}.")
