"""One EPM access token for the whole deployment: every process takes it from the database.

Other processes are real: gunicorn workers, and broker processes driven by
tests/epm/token_process.py. EPM is the fake, whose token endpoint a test can hold
open (a slow EPM) so that a second process asks while the first one is fetching.
"""
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests

from app import contract, secrets
from app.configuration import update_configuration
from app.db import database, is_sqlite
from app.epm import tokens
from app.epm.client import EpmClient
from app.epm.fake import FakeEpm
from app.epm.models import EpmToken
from app.models import Configuration, Task
from tests import factories
from tests.epm.token_process import TIMEOUT_SECONDS, token_digest
from tests.live import ROOT, LiveServer
from tests.waiting import wait_until

ANSWER_SECONDS = 30


class SlowTokenEpm(FakeEpm):
    """The fake EPM, whose token endpoint can be held open, and which keeps the tokens it issued."""

    def __init__(self, **kwargs):
        self.token_gate = threading.Event()
        self.token_gate.set()
        self.token_requests_arrived = 0  # counted on arrival, while the gate holds them
        self.issued = []
        super().__init__(**kwargs)

    def _token_view(self):
        with self._lock:
            self.token_requests_arrived += 1
        self.token_gate.wait(ANSWER_SECONDS)
        answer = super()._token_view()
        if getattr(answer, "status_code", None) == 200:
            with self._lock:
                self.issued.append(answer.get_json()["access_token"])
        return answer

    @contextmanager
    def holding_tokens(self):
        """Token requests wait for the end of the block before they are answered."""
        self.token_gate.clear()
        try:
            yield
        finally:
            self.token_gate.set()


class BrokerProcess:
    """A broker process of its own (tests/epm/token_process.py), driven over its stdin and stdout."""

    def __init__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "tests.epm.token_process"], cwd=ROOT, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.answers = queue.Queue()
        self.events = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            message = json.loads(line)
            (self.events if "event" in message else self.answers).put(message)

    @property
    def pid(self):
        return self.process.pid

    def alive(self):
        return self.process.poll() is None

    def send(self, op, **arguments):
        while not self.events.empty():  # what earlier calls said is not about this one
            self.events.get_nowait()
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()

    def answer(self):
        answer = self.answers.get(timeout=ANSWER_SECONDS)
        assert answer["ok"], answer.get("traceback") or answer
        return answer

    def waits_on_the_claim(self):
        """Block until this process, mid-call, found another's claim on the token row and waits on it."""
        try:
            event = self.events.get(timeout=ANSWER_SECONDS)
        except queue.Empty:
            raise AssertionError(f"process {self.pid} never waited on another's token fetch") from None
        assert event == {"event": "waiting"}, event

    def ask(self, op, **arguments):
        self.send(op, **arguments)
        return self.answer()

    def kill(self):
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def close(self):
        if self.alive():
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reader.join(10)  # it stops at the end of the process's output
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()


@pytest.fixture(scope="module")
def process_pool():
    """Broker processes kept for the module (starting one costs seconds); a killed one is replaced."""
    pool = []
    yield pool
    for process in pool:
        process.close()


@pytest.fixture
def processes(app, database_url, process_pool):
    """Two broker processes besides this one, freshly opened on this test's database."""
    for process in [process for process in process_pool if not process.alive()]:
        process.close()
        process_pool.remove(process)
    while len(process_pool) < 2:
        process_pool.append(BrokerProcess())
    for process in process_pool[:2]:
        process.ask("open", database_url=database_url)
    return process_pool[:2]


@pytest.fixture
def epm(app):
    """The slow-token fake EPM, entered in the configuration."""
    with SlowTokenEpm() as fake:
        update_configuration({"pmc_host": fake.url, "client_id": fake.client_id, "client_secret": fake.client_secret})
        yield fake


def write_seconds():
    """How long a write transaction on the token row takes here; it fails after 1 s if the row is locked."""
    started = time.monotonic()
    if is_sqlite():
        database.execute_sql("PRAGMA busy_timeout = 1000")
    with database.atomic():
        if not is_sqlite():
            database.execute_sql("SET LOCAL lock_timeout = '1s'")
        EpmToken.update(fetched_at=EpmToken.fetched_at).execute()
    return time.monotonic() - started


def test_two_processes_asking_at_once_make_one_token_request_and_lock_nothing_meanwhile(epm, processes):
    first, second = processes
    with epm.holding_tokens():
        first.send("call")
        wait_until(lambda: epm.token_requests_arrived == 1, message="the first token request")
        second.send("call")
        claim = EpmToken.get()
        assert claim.holder is not None and claim.access_token is None
        # The token request is on the wire: intake and decisions must still be able to write.
        assert write_seconds() < 0.5
        second.waits_on_the_claim()
    answers = [first.answer(), second.answer()]

    assert (epm.token_requests_arrived, epm.token_requests) == (1, 1)
    assert [answer["fetches"] for answer in answers] == [1, 0]
    assert {answer["token"] for answer in answers} == {token_digest(epm.issued[0])}
    stored = EpmToken.get()
    assert (stored.access_token, stored.holder, stored.claimed_until) == (epm.issued[0], None, None)


def test_an_expired_stored_token_is_renewed_once_for_every_process(epm, processes):
    first, second = processes
    assert [first.ask("call")["fetches"], second.ask("call")["fetches"]] == [1, 0]

    for process in processes:
        process.ask("advance", seconds=3600 - tokens.RENEW_MARGIN_SECONDS + 1)
    with epm.holding_tokens():
        first.send("call")
        wait_until(lambda: epm.token_requests_arrived == 2, message="the renewing token request")
        second.send("call")
        second.waits_on_the_claim()
    answers = [first.answer(), second.answer()]

    assert epm.token_requests == 2
    assert [answer["fetches"] for answer in answers] == [1, 0]
    assert epm.issued[0] != epm.issued[1]
    assert {answer["token"] for answer in answers} == {token_digest(epm.issued[1])}
    assert EpmToken.get().access_token == epm.issued[1]


def test_a_process_that_dies_fetching_holds_the_others_up_no_longer_than_its_claim(epm, processes):
    dying, survivor = processes
    with epm.holding_tokens():
        dying.send("call")
        wait_until(lambda: epm.token_requests_arrived == 1, message="the first token request")
        claim = EpmToken.get()
        assert claim.holder is not None
        dying.kill()
    claim_left = (claim.claimed_until - tokens._wall_clock()).total_seconds()

    answer = survivor.ask("call")

    assert answer["fetches"] == 1
    assert claim_left - 0.3 <= answer["elapsed"] <= TIMEOUT_SECONDS + tokens.CLAIM_MARGIN_SECONDS + 1.5
    assert answer["token"] == token_digest(epm.issued[-1]) == token_digest(EpmToken.get().access_token)


def test_a_waiting_process_reads_the_others_token_without_trying_a_claim_it_cannot_win(app, monkeypatch):
    from datetime import timedelta

    from app import claims

    key = tokens.cache_key("https://epm.example", "/oauth/connect/token", "client", "secret")
    where = EpmToken.key == tokens.storage_key(key)
    EpmToken.insert(key=tokens.storage_key(key)).execute()
    assert claims.claim(EpmToken, where, 60, holder="another-host:1:token")  # that process is fetching
    tried = []
    monkeypatch.setattr(tokens.claims, "claim", lambda *args, **kwargs: tried.append(args) or False)

    def others_fetch_ends(seconds):  # the first wait: the other process stores its token meanwhile
        now = claims.database_now()
        EpmToken.update(access_token="shared-token", renew_at=now + timedelta(hours=1), claimed_until=None,
                        holder=None).where(where).execute()
    monkeypatch.setattr(tokens.time, "sleep", others_fetch_ends)
    tokens.clear_token_cache()

    assert tokens.get_token(key, lambda: pytest.fail("fetched although another process was fetching"),
                            shared=True) == "shared-token"
    assert tried == [], "no claim tried while the other's ran"


def test_the_stored_token_is_encrypted_and_its_key_names_no_secret(epm):
    EpmClient.from_configuration(Configuration.default()).list_requests(contract.KIND_APPLICATION, page_size=1)
    [token] = epm.issued

    [row] = database.execute_sql(f'SELECT * FROM "{EpmToken._meta.table_name}"').fetchall()
    raw = " ".join(str(value) for value in row)
    assert token not in raw
    assert epm.client_secret not in raw and epm.client_id not in raw and "127.0.0.1" not in raw
    stored = EpmToken.get()
    assert database.execute_sql(f'SELECT access_token FROM "{EpmToken._meta.table_name}"').fetchone()[0].startswith(
        secrets.PREFIX)
    assert stored.access_token == token


def test_new_credentials_never_use_a_token_stored_for_the_old_ones(epm):
    def call():
        EpmClient.from_configuration(Configuration.default()).list_requests(contract.KIND_APPLICATION, page_size=1)

    call()
    # Another host's view: the secret changed under it, the old token still stored.
    epm.rotate_secret("rotated-secret")
    Configuration.update(client_secret="rotated-secret").execute()
    tokens.clear_token_cache()
    call()
    assert epm.token_requests == 2
    assert EpmToken.select().count() == 2

    # Changed where admins change it: every stored token goes.
    update_configuration({"client_secret": "broker-secret"})
    assert EpmToken.select().count() == 0


@pytest.fixture
def broker(app, database_url, api_account):
    """A gunicorn broker with two workers, two approvers, and the slow-token fake EPM that knows it."""
    factories.account("alice", contract.ROLE_USER)
    factories.account("bob", contract.ROLE_USER)
    with LiveServer(database_url, workers=2) as server:
        with SlowTokenEpm(broker_url=server.url, webhook_user=api_account.username,
                          webhook_password=factories.PASSWORD) as fake:
            update_configuration({"pmc_host": fake.url, "client_id": fake.client_id,
                                  "client_secret": fake.client_secret})
            yield server, fake


@pytest.mark.e2e
def test_two_gunicorn_workers_deciding_at_once_share_one_token_and_its_replacement_after_a_401(broker):
    server, fake = broker
    numbers = [Task.get(Task.request_id == fake.fire_application_request()).number for _ in range(4)]

    def approve(user, number):
        return requests.post(f"{server.url}/api/x_bets_pmc_jit/tickets/{number}/decision", timeout=ANSWER_SECONDS,
                             auth=(user, factories.PASSWORD),
                             json={"decision": "Approved", "reason": f"{user} approves", "duration_unit": "once"})

    def decide_two_at_once(pair, token_requests_before):
        with ThreadPoolExecutor(2) as pool:
            with fake.holding_tokens():
                answers = [pool.submit(approve, user, number) for user, number in zip(("alice", "bob"), pair)]
                wait_until(lambda: fake.token_requests_arrived == token_requests_before + 1,
                           message="one worker's token request")
                # A fixed wait: a gunicorn worker cannot say when it found the other's claim and waits on it.
                time.sleep(0.3)
            return [answer.result().status_code for answer in answers]

    assert decide_two_at_once(numbers[:2], 0) == [201, 201]
    assert fake.token_requests == 1

    fake.revoke_tokens()  # as EPM does when the client secret is regenerated
    assert decide_two_at_once(numbers[2:], 1) == [201, 201]
    assert fake.token_requests == 2
    assert fake.applied_count == 4
    assert EpmToken.get().access_token == fake.issued[1]
