"""The processes a benchmark phase runs against: gunicorn masters, databases, a scheduler.

Every server listens on loopback. Gunicorn runs the way Procfile runs the broker:
`gunicorn 'app:create_app()'` started in the project folder, so it takes its worker
class, workers and threads from gunicorn.conf.py there, and the roof and the broker
are measured under the same settings.
"""
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg2
import requests

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("JITBROKER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def gunicorn_hooks():
    """Everything gunicorn.conf.py defines: its settings and its server hooks (post_worker_init)."""
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def gunicorn_settings():
    """The worker settings gunicorn.conf.py gives every gunicorn started in the project folder."""
    settings = gunicorn_hooks()
    return {"workers": settings["workers"], "worker_class": settings["worker_class"], "threads": settings["threads"]}


WORKERS = gunicorn_settings()["workers"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Gunicorn:
    """One gunicorn master with `workers` workers (gunicorn.conf.py's class) serving `app_spec` on a free loopback
    port."""

    def __init__(self, app_spec, env=None, workers=WORKERS):
        self.app_spec = app_spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {**os.environ, **(env or {})}
        self.process = None

    def start(self, timeout=60):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
             "--graceful-timeout", "5", "--log-level", "warning", self.app_spec],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.app_spec} exited: {self.process.stderr.read()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200 and \
                        len(self.worker_pids()) == self.workers:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn {self.app_spec} did not answer /healthz in time")

    def worker_pids(self):
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            return []
        return [int(pid) for pid in children]

    def worker_peak_rss_mb(self):
        """The largest peak resident set (VmHWM) among the workers, in MB."""
        peaks = []
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
            except OSError:
                continue
        return round(max(peaks), 1) if peaks else None

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids=None, name=None):
    """{pid: CPU seconds (user and system) used so far} of the processes `pids`, or of every process called `name`."""
    used = {}
    for entry in (map(str, pids) if pids is not None else os.listdir("/proc")):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if name is not None and stat[stat.index("(") + 1:stat.rindex(")")] != name:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / _TICKS
    return used


def cpu_used_since(before, after):
    """CPU seconds used between two cpu_seconds() readings by the processes alive at the second
    (what a process that ended in between used is not counted)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def host_busy_seconds():
    """(seconds every CPU of the host has run, and of them busy: not idle nor waiting for the disk)."""
    values = list(map(int, Path("/proc/stat").read_text().splitlines()[0].split()[1:]))
    return sum(values) / _TICKS, (sum(values) - values[3] - values[4]) / _TICKS


class Process:
    """A long-running helper process (the scheduler), stopped with SIGTERM."""

    def __init__(self, argv, env=None):
        self.argv = argv
        self.env = {**os.environ, **(env or {})}
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()


def _admin_connection():
    connection = psycopg2.connect(POSTGRES_ADMIN_URL)
    connection.autocommit = True
    return connection


class PostgresDatabase:
    """A PostgreSQL database created for one phase and dropped after it."""

    def __init__(self, label):
        self.name = f"jitbroker_bench_{label}_{uuid.uuid4().hex[:6]}"
        self.url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{self.name}"

    def __enter__(self):
        connection = _admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{self.name}"')
        connection.close()
        return self

    def __exit__(self, *exc):
        connection = _admin_connection()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        connection.close()


class SqliteDatabase:
    """A SQLite file in a scratch folder, removed after the phase."""

    def __init__(self, folder, label):
        self.path = Path(folder) / f"{label}.db"
        self.url = f"sqlite:///{self.path}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def database_for(backend, folder, label):
    return SqliteDatabase(folder, label) if backend == "sqlite" else PostgresDatabase(label)
