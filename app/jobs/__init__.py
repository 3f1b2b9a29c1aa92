"""Background jobs: their registry (registry.py), the scheduler and its lease (scheduler.py,
lease.py), and the jobs that are more than a call into a feature (reconcile.py, retention.py).

Jobs run in one `jitbroker scheduler` process per deployment, never inside gunicorn
workers (each worker would run every job again), or from cron with `jitbroker run-jobs`.
Whoever runs jobs holds the scheduler lease, so no two processes run them at once.
"""
