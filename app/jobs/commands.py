"""`jitbroker scheduler`, `run-jobs`, `jobs status`, `reconcile` and `purge`."""
import click
from flask import current_app
from flask.cli import with_appcontext

from app.db import database


class LeaseTimesRefused(click.ClickException):
    """Scheduler lease times that cannot work: a message, no traceback, exit status 2 (a usage error)."""

    exit_code = 2


def _check_lease_times():
    from app.jobs import lease

    try:
        lease.check_lease_times()
    except ValueError as error:
        raise LeaseTimesRefused(f"{error}; nothing was run") from None


@click.command("scheduler")
@with_appcontext
def scheduler_command():
    """Run the background jobs until stopped. Start one per deployment; a second one stands by
    and takes over when the first stops renewing its lease."""
    from app.jobs.scheduler import run_until_signalled

    _check_lease_times()
    run_until_signalled(current_app._get_current_object())


@click.command("run-jobs")
@click.option("--force", is_flag=True, help="Run every job, also those that ran less than an interval ago.")
@click.option("--job", "names", multiple=True, help="Run only this job (repeatable).")
@with_appcontext
def run_jobs_command(force, names):
    """Run every due job once and exit (for cron); refused while a scheduler is running the jobs."""
    from app.jobs.registry import JOBS, LeaseHeld, run_due_jobs

    unknown = [name for name in names if name not in JOBS]
    if unknown:
        raise click.UsageError(f"unknown job {unknown[0]!r}; jobs are {', '.join(JOBS)}")
    _check_lease_times()
    try:
        outcomes = run_due_jobs(force=force, names=names or None)
    except LeaseHeld as held:
        raise click.ClickException(
            f"the scheduler {held.state['holder']} is running the jobs (heartbeat "
            f"{held.state['heartbeat_age_seconds']:.0f} s ago); nothing was run. Stop it, or leave the jobs to it."
        ) from None
    for name, outcome in outcomes.items():
        click.echo(f"{name}: {outcome}")
    if any(outcome.error for outcome in outcomes.values()):
        raise SystemExit(1)


jobs = click.Group("jobs", help="Background jobs and the scheduler running them.")


@jobs.command("status")
@with_appcontext
def jobs_status():
    """Which scheduler is active, its heartbeat, and each job's last run."""
    from app.jobs import lease
    from app.jobs.models import JobRun
    from app.jobs.registry import JOBS

    with database.connection_context():
        state = lease.scheduler_lease()
        last_runs = {row.name: row for row in JobRun.select()}
    if state is None:
        click.echo("scheduler: never ran")
    else:
        status = "expired" if state["expired"] else "active"
        click.echo(f"scheduler: {status}, holder {state['holder'] or '-'}, "
                   f"heartbeat {state['heartbeat_age_seconds']:.0f} s ago")
    for name, job in JOBS.items():
        row = last_runs.get(name)
        if row is None or row.last_started_at is None:
            click.echo(f"{name}: every {job.interval_seconds} s, never ran")
            continue
        if row.last_finished_at is None or row.last_finished_at < row.last_started_at:
            # Unfinished: running while the live lease's holder, which took the lease before the run started, holds
            # the jobs; else its runner died mid-job (a standby that took over since holds the lease now).
            running = (state is not None and not state["expired"] and state["acquired_at"] is not None
                       and row.last_started_at >= state["acquired_at"])
            outcome = "running now" if running else "did not finish"
        else:
            outcome = f"failed: {row.last_error}" if row.last_error else (row.last_result or "")
        # A result of several lines (a reconciliation's problems) continues indented under its job.
        click.echo(f"{name}: every {job.interval_seconds} s, last started {row.last_started_at:%Y-%m-%d %H:%M:%S} "
                   f"UTC; {outcome}".replace("\n", "\n  "))


@click.command("reconcile")
@click.option("--dry-run", is_flag=True, help="Report what would change without changing anything.")
@with_appcontext
def reconcile_command(dry_run):
    """Compare EPM's request lists with the tickets and repair what lost webhooks left out."""
    from app.audit.service import cli_actor
    from app.epm.errors import EpmError
    from app.jobs.reconcile import reconcile

    try:
        with database.connection_context():
            report = reconcile(dry_run=dry_run, actor=cli_actor())
    except (EpmError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    for line in report.lines():
        click.echo(line)


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted without deleting.")
@with_appcontext
def purge_command(dry_run):
    """Delete rows older than their retention period (see `jitbroker config show`), per table."""
    from app.audit.service import cli_actor
    from app.jobs.retention import purge

    with database.connection_context():
        report = purge(dry_run=dry_run, actor=cli_actor())
    for line in report.lines():
        click.echo(line)


COMMANDS = [scheduler_command, run_jobs_command, jobs, reconcile_command, purge_command]
