"""Background jobs: their registry, the scheduler and its lease, and reconciliation and retention.

Jobs run in one `jitbroker scheduler` process (or `jitbroker run-jobs` from cron), never in gunicorn
workers, where each worker would run every job again."""
