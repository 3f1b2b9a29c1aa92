"""A real gunicorn serving the broker on loopback, for end-to-end tests."""
import itertools
import os
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import requests

from app.epm.fake import FakeEpm
from app.epm.tokens import clear_token_cache
from app.models import Configuration
from tests import factories
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


# Ports come from below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 up by default). A
# port from there, as bind(("", 0)) gives, can be handed to any client's outgoing connection between the probe
# and the server's own bind ("Address already in use"). Each xdist worker takes its own band, in turn. The bands
# start above 10080, the highest of the ports browsers refuse to open (net::ERR_UNSAFE_PORT).
PORT_BANDS_START, PORT_BAND_SIZE = 20_000, 1_000
EPHEMERAL_PORTS_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_next_ports = itertools.count()


def ephemeral_ports():
    """The ports this host's kernel hands outgoing connections (Linux's default where it cannot be read)."""
    try:
        low, high = map(int, EPHEMERAL_PORTS_FILE.read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port():
    """A loopback port that nothing listens on and no outgoing connection can take, for a server a test starts
    next."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    band_start = PORT_BANDS_START + int(worker.removeprefix("gw")) % 10 * PORT_BAND_SIZE
    ephemeral = ephemeral_ports()
    for _ in range(PORT_BAND_SIZE):
        port = band_start + next(_next_ports) % PORT_BAND_SIZE
        if port in ephemeral:
            continue  # on a host whose range starts lower than Linux's default
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free loopback port in {band_start}..{band_start + PORT_BAND_SIZE - 1} outside the "
                       f"ephemeral ports {ephemeral.start}..{ephemeral.stop - 1} ({EPHEMERAL_PORTS_FILE})")


class LiveServer:
    """`gunicorn 'app:create_app()'` with `workers` sync workers on a free loopback port."""

    def __init__(self, database_url, workers=2, env=None, secret_key="test-secret-key", port=None, tls=None):
        # A fixed `port` brings a server back where its clients expect it after a crash.
        self.port = port or free_port()
        # tls: (certificate file, key file) to serve HTTPS with, the certificate being what clients trust.
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.database_url = database_url
        self.workers = workers
        self.env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": secret_key, **(env or {})}
        self.process = None

    def start(self, timeout=60):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
             "--graceful-timeout", "5", "--log-level", "warning",
             *(("--certfile", str(self.tls[0]), "--keyfile", str(self.tls[1])) if self.tls else ()),
             "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

        def answers():
            if self.process.poll() is not None:
                error = self.process.stderr.read()
                self.stop()
                raise RuntimeError(f"gunicorn exited: {error}")
            try:
                # Generous: on a busy machine the socket accepts before a worker has booted.
                return requests.get(f"{self.url}/healthz", timeout=5,
                                    verify=str(self.tls[0]) if self.tls else True).status_code == 200
            except requests.RequestException:
                return False

        try:
            wait_until(answers, timeout=timeout, interval=0.1, message="gunicorn to answer /healthz")
        except AssertionError:
            self.stop()
            raise
        return self

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

    def worker_pids(self):
        """The live (not zombie) processes whose parent is this server's master: its workers, oldest first."""
        return children_of(self.process.pid)

    def kill_worker(self, pid):
        os.kill(pid, signal.SIGKILL)

    def kill_master(self, with_workers=False):
        """SIGKILL the master (and at once its workers, as a supervisor killing the whole service
        would); returns the pids of the workers it had."""
        workers = self.worker_pids()
        self.process.kill()
        if with_workers:
            for pid in workers:
                os.kill(pid, signal.SIGKILL)
        self.process.wait()
        self.process.stderr.close()
        return workers

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def ignoring_sigint():
    """A `preexec_fn` starting the child with SIGINT ignored, as a script's background job (or an xdist worker)
    starts it: what a process that must stop on Ctrl-C has to undo itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stat(pid):
    """(state, parent pid, start time in clock ticks) of `pid` from /proc, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; starttime is field 22.
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1]), int(fields[19])


def children_of(parent_pid):
    """Live child processes of `parent_pid`, oldest first."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[1] == parent_pid and stat[0] != "Z":
                children.append((stat[2], int(entry.name)))
    return [pid for _started, pid in sorted(children)]


def is_running(pid):
    """True while `pid` exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


@contextmanager
def connected_epm(server, **options):
    """A strict fake EPM tenant that delivers to `server` as the `api` account (factories.PASSWORD), stored as
    the broker's EPM connection; the shared token cache is cleared on the way in and out. `options` go to
    FakeEpm (auto_finalize=True, say)."""
    with FakeEpm(broker_url=server.url, webhook_user="epm", webhook_password=factories.PASSWORD, strict=True,
                 **options) as epm:
        Configuration.default()
        Configuration.update(pmc_host=epm.url, client_id=epm.client_id, client_secret=epm.client_secret).execute()
        clear_token_cache()
        try:
            yield epm
        finally:
            clear_token_cache()
