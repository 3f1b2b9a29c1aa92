"""gunicorn's settings for the broker. gunicorn reads this file from the folder it starts in,
so Procfile, the end-to-end tests and the benchmark (roof included) all run the same way.

gthread workers: a request that waits (a commit's fsync on SQLite or WAL flush on
PostgreSQL, a decision's call to EPM) leaves the worker's other threads serving, and
deliveries that queued intake stores at the same moment share one commit (app/db.py,
GroupedInsert). Each thread holds at most one pooled database connection, so `threads`
must not exceed `[database] max_connections` (8 by default).
WEB_CONCURRENCY and WEB_THREADS override the defaults.
"""
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "8"))
