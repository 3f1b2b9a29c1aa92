"""JIT Broker's benchmark suite: real gunicorn processes on loopback, loaded with wrk.

`python -m bench` (or `scripts/bench`) runs every phase and writes
bench/results/latest.json and docs/performance.md; `--quick` makes a short run for
trying the suite out. See docs/performance.md for what each phase measures.
"""
