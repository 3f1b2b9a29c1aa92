"""A real gunicorn serving the broker on loopback, for end-to-end tests."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LiveServer:
    """`gunicorn 'app:create_app()'` with `workers` sync workers on a free loopback port."""

    def __init__(self, database_url, workers=2, env=None, secret_key="test-secret-key"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.workers = workers
        self.env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secret_key, **(env or {})}
        self.process = None

    def start(self, timeout=60):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
             "--graceful-timeout", "5", "--log-level", "warning", "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                error = self.process.stderr.read()
                self.stop()
                raise RuntimeError(f"gunicorn exited: {error}")
            try:
                # Generous: on a busy machine the socket accepts before a worker has booted.
                if requests.get(f"{self.url}/healthz", timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
