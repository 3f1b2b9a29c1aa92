"""PostgreSQL restarted under load: EPM gets 503s to retry, never a 500, and the broker recovers by itself.

The server is a private PostgreSQL cluster made for this test (initdb in a temporary
directory, on a free loopback port), so stopping it leaves the suite's shared server
alone. It is stopped cleanly, then crashed, while deliveries stream at a gunicorn that
is never restarted; the broker's connections are also cut from the server's side
(pg_terminate_backend) without a restart.
"""
import glob
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg2
import pytest

from app import create_app
from app.db import database
from app.migrations import upgrade
from tests import factories
from tests.live import LiveServer, free_port
from tests.e2e.streaming import Epm, assert_nothing_half_written, make_deliveries
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

REQUESTS = 60  # 180 deliveries: see make_deliveries
SENDERS = 4
# Once this share of the deliveries has been answered: how the database goes away.
FAULTS = ((0.2, "stop"), (0.45, "crash"), (0.7, "terminate connections"))
# While the database is down, wait for this many 503s before bringing it back.
UNAVAILABLE_ANSWERS = 5


def _postgres_bin(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"PostgreSQL's {name} is not installed under /usr/lib/postgresql"
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own; as root, run by the `postgres` user (the server refuses root)."""

    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="jitbroker-pg-"))
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.directory, "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command, check=True):
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_root else []
        done = subprocess.run([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=60)
        if check and done.returncode:
            raise RuntimeError(f"{Path(command[0]).name} {command[-1]} failed: {done.stderr.strip()}")

    def create(self):
        self._as_postgres(_postgres_bin("initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8")
        return self.start()

    def start(self):
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off "
                   "-c full_page_writes=off")
        self._as_postgres(_postgres_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"), "-w",
                          "-o", options, "start")
        return self

    def stop(self, mode="fast", check=True):
        """`fast` ends the sessions and shuts down cleanly; `immediate` crashes (recovery on the next start)."""
        self._as_postgres(_postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=check)

    def terminate_connections(self):
        """Cut every other session from the server's side, as an admin or a failover would."""
        connection = psycopg2.connect(self.url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
                return cursor.fetchone()[0]
        finally:
            connection.close()

    def destroy(self):
        self.stop("immediate", check=False)  # it may be stopped already
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        yield server.create()
    finally:
        server.destroy()


@pytest.fixture
def restartable_database(private_postgres):
    """The broker's schema and EPM's account on the private server; yields its URL."""
    app = create_app({"database_url": private_postgres.url, "secret_key": "test-secret-key", "TESTING": True})
    with app.app_context():
        with database.connection_context():
            upgrade()
            factories.account("epm", "api")
        yield private_postgres.url
        database.close_all()


def test_a_restarted_database_gets_epm_503s_then_every_delivery_stored_once_without_a_broker_restart(
        private_postgres, restartable_database):
    request_ids, updated, deliveries = make_deliveries(REQUESTS)
    total = len(deliveries)
    terminated = 0
    with LiveServer(restartable_database, workers=2) as server:
        workers = set(server.worker_pids())
        epm = Epm(server.url)
        with ThreadPoolExecutor(SENDERS) as pool:
            sent = [pool.submit(epm.deliver, index, body) for index, body in enumerate(deliveries)]
            for share, fault in FAULTS:
                wait_until(lambda: epm.answered >= share * total, timeout=60,
                           message=f"{share:.0%} of the deliveries answered")
                if fault == "terminate connections":
                    terminated = private_postgres.terminate_connections()
                    continue
                unavailable_before = epm.unavailable
                private_postgres.stop("fast" if fault == "stop" else "immediate")
                wait_until(lambda: epm.unexpected or epm.unavailable >= unavailable_before + UNAVAILABLE_ANSWERS,
                           timeout=60, message="503s while it is down")
                assert epm.unexpected == [], "only 503 with Retry-After while the database is down"
                private_postgres.start()
            for future in sent:
                future.result()
            # The same processes serve on: nothing was restarted or replaced.
            assert server.process.poll() is None and set(server.worker_pids()) == workers

    assert epm.unexpected == [], "only 200 or 503 with Retry-After, never a 500"
    assert epm.no_answer == 0, "the broker answered every request, whatever the database did"
    assert len(epm.answers) == total, "every delivery was stored once EPM retried"
    assert terminated > 0, "the broker's connections were cut from the server's side"
    with database.connection_context():
        stored = assert_nothing_half_written(request_ids, updated)
    print(f"\ndatabase restarted under load: {total} deliveries, faults {[fault for _, fault in FAULTS]}, "
          f"{epm.unavailable} 503s, {terminated} connections terminated, {stored} rows stored, 0 lost, 0 500s")
