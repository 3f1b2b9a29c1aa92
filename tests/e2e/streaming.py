"""EPM streaming deliveries at a live broker while something breaks, and the checks afterwards."""
import random
import threading
import time
import uuid
from collections import Counter

import requests

from app import contract
from app.models import AdminTicket, ApplicationAccessTicket, IncomingRequest, Task, WorkNote
from tests import factories
from tests.conftest import WEBHOOK

GIVE_UP_SECONDS = 120
RESEND_PAUSE_SECONDS = 0.05
JIT_MODELS = (AdminTicket, ApplicationAccessTicket)
FINALIZED_NOTE = "EPM finalized the decision"


class Epm:
    """Sends deliveries as EPM does: each one again until it is answered 2xx."""

    def __init__(self, url):
        self.url = url
        self._lock = threading.Lock()
        self._local = threading.local()
        self.answers = {}  # delivery index -> the 200's result
        self.no_answer = 0  # attempts that got no HTTP answer at all (reset, refused, timed out)
        self.unavailable = 0  # 503s with Retry-After
        self.unexpected = []  # anything else: (status, body)
        # Once one delivery went unanswered for GIVE_UP_SECONDS the broker is not coming
        # back: the others stop too, so a broken broker fails the test in minutes, not hours.
        self.gave_up = threading.Event()

    @property
    def answered(self):
        with self._lock:
            return len(self.answers)

    def deliver(self, index, body):
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            self._local.session.auth = ("epm", factories.PASSWORD)
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline and not self.gave_up.is_set():
            try:
                response = self._local.session.post(self.url + WEBHOOK, json=body, timeout=15)
            except requests.RequestException:
                with self._lock:
                    self.no_answer += 1
            else:
                if response.status_code == 200:
                    with self._lock:
                        self.answers[index] = response.json()["result"]
                    return
                if response.status_code != 503 or int(response.headers.get("Retry-After", "0")) <= 0:
                    with self._lock:
                        self.unexpected.append((response.status_code, response.text[:300]))
                    return
                with self._lock:
                    self.unavailable += 1
            # Part of this fake EPM, not a wait for a condition: its pause before it sends again
            # (the real one waits Retry-After or backs off; a test need not wait that long).
            time.sleep(RESEND_PAUSE_SECONDS)
        self.gave_up.set()


def make_deliveries(count):
    """(request ids, updated request ids, shuffled deliveries) for `count` requests.

    Every created event is sent twice (EPM resends); every other pair of requests also gets
    its update event, twice; the order is shuffled, so some updates come before their ticket.
    """
    request_ids = [str(uuid.uuid4()) for _ in range(count)]
    updated, deliveries = [], []
    for index, request_id in enumerate(request_ids):
        application = index % 2 == 1
        created = (factories.application_request if application else factories.admin_request)(request_id)
        deliveries += [created, created]
        if index % 4 < 2:
            update = (factories.application_decision if application else factories.admin_decision)(request_id)
            deliveries += [update, update]
            updated.append(request_id)
    random.Random(11).shuffle(deliveries)
    return request_ids, updated, deliveries


def assert_nothing_half_written(request_ids, updated):
    """One ticket per RequestId with gap-free numbers, each event processed once; returns the rows stored."""
    tasks = {task.id: task for task in Task.select()}
    # One ticket per RequestId, with its JIT record, and numbers without a gap.
    assert sorted(task.request_id for task in tasks.values()) == sorted(request_ids)
    jit_tasks = [row.task_id for model in JIT_MODELS for row in model.select(model.task)]
    assert sorted(jit_tasks) == sorted(tasks)
    assert sorted(task.number for task in tasks.values()) == [f"INC{10001 + i:07d}" for i in range(len(request_ids))]
    # Every stored delivery finished: processed once per event, the resends duplicates of it.
    rows = list(IncomingRequest.select())
    assert all(row.status in (contract.INCOMING_PROCESSED, contract.INCOMING_DUPLICATE) for row in rows), \
        Counter(row.status for row in rows)
    assert all(row.processed_at is not None and row.task_id in tasks for row in rows)
    processed = Counter((row.request_id, row.event_type) for row in rows if row.status == contract.INCOMING_PROCESSED)
    assert set(processed.values()) == {1}
    assert sum(processed.values()) == len(request_ids) + len(updated)
    # Each update applied once: one final decision, one note saying so.
    finalized = [row.request_id for model in JIT_MODELS for row in model.select().where(model.decision_final)]
    assert sorted(finalized) == sorted(updated)
    notes = Counter(note.task_id for note in WorkNote.select().where(WorkNote.text.startswith(FINALIZED_NOTE)))
    assert sorted(tasks[task_id].request_id for task_id in notes) == sorted(updated) and set(notes.values()) == {1}
    return len(rows)
