"""Background jobs, run by one `jitbroker scheduler` process per deployment.

APScheduler runs inside this one process, never inside gunicorn workers (each
worker would run every job again). `run_due_jobs` runs each job once, for cron
deployments and tests.
"""
import logging

from app.db import database

log = logging.getLogger(__name__)

OUTBOX_INTERVAL_SECONDS = 5


def deliver_outbox():
    """Attempt every decision delivery that is due."""
    from app.decisions.delivery import deliver_due

    with database.connection_context():
        tried = deliver_due()
    if tried:
        log.info("outbox: %s decision deliveries attempted", tried)
    return tried


# name -> (function, interval in seconds)
JOBS = {
    "deliver_outbox": (deliver_outbox, OUTBOX_INTERVAL_SECONDS),
}


def run_due_jobs():
    """Run every job once; returns {name: result}."""
    return {name: function() for name, (function, _interval) in JOBS.items()}


def run_scheduler(app):
    """Block running the jobs on their intervals, each inside an app context."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")

    def in_context(function):
        def run():
            with app.app_context():
                function()
        return run

    for name, (function, interval) in JOBS.items():
        # One instance of a job at a time; a late run is merged, not queued.
        scheduler.add_job(in_context(function), "interval", seconds=interval, id=name, max_instances=1,
                          coalesce=True, misfire_grace_time=interval)
    log.info("scheduler started with jobs: %s", ", ".join(JOBS))
    scheduler.start()
