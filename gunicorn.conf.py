"""gunicorn's settings for the broker. gunicorn reads this file from the folder it starts in,
so Procfile, the end-to-end tests and the benchmark (roof included) all run the same way.

Sync workers by default. WEB_THREADS above 1 makes them gthread workers of that many
threads: a delivery waiting on its commit then leaves the worker's other threads
serving. The ticket pages pay for it: on SQLite their p95 rose and some runs were
several times slower than others (docs/performance.md, "Worker class"), and kept-alive connections stay with the worker
that accepted them, however busy it is. Each thread holds at most one pooled database
connection, so WEB_THREADS must not exceed `[database] max_connections` (8 by default).
WEB_CONCURRENCY sets the number of workers.

gunicorn clamps limit_request_line to 8,190 bytes and answers a longer line with an HTML 414;
0 lifts its limit so the application caps the line itself at 32 KiB with a JSON error
(app/http.py), as Table API clients sending long encoded queries need.
"""
import gc
import os

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
limit_request_line = 0


def post_worker_init(worker):
    """Move what loading the app made (the app, its models, schemas, templates and libraries: about 90,000
    objects) out of the garbage collector's reach: they live as long as the worker. A full collection then
    walks only what requests made, instead of pausing every request queued at the worker while it walks them
    all (Python's gc.freeze; docs/performance.md, "How it is measured"). What loading left unreachable is
    collected first, not kept for good."""
    gc.collect()
    gc.freeze()
