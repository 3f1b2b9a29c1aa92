"""A `jitbroker scheduler` SIGKILLed mid-job: the standby takes over once the lease runs out and
finishes the job; every decision reaches EPM, none is applied twice. Stopped by SIGTERM or SIGINT
instead, it exits at once and hands its lease back.

Two real scheduler processes share the database with a short lease (set through the
environment). The active one is killed while EPM holds the answer to
a decision it is sending; the standby sends the decisions the dead one never reached
as soon as it takes over, and re-sends the abandoned one (same idempotency key) once
its claim runs out.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from app import contract
from app.jobs import lease
from app.jobs.registry import Job
from app.jobs.scheduler import LeasedScheduler
from app.models import Decision, Task, utcnow
from tests.live import ROOT, ignoring_sigint
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

DECISIONS = 4
LEASE_SECONDS, HEARTBEAT_SECONDS = 3, 1
# The scheduler waits this long for EPM; a decision claimed by a process that died is
# taken up again after 6 × this + 5 seconds (app/decisions/delivery.py).
EPM_TIMEOUT_SECONDS = 2


class SchedulerProcess:
    """`jitbroker scheduler` in a process of its own, its log in a file."""

    def __init__(self, database_url, directory, name, preexec_fn=None):
        config = directory / "scheduler.toml"
        config.write_text(f'[epm]\ntimeout_seconds = {EPM_TIMEOUT_SECONDS}\nretry_schedule = "1"\n')
        self.log_path = directory / f"{name}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key",
               "JITBROKER_CONFIG": str(config),
               "JITBROKER_SCHEDULER_LEASE_SECONDS": str(LEASE_SECONDS),
               "JITBROKER_SCHEDULER_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS)}
        self.process = subprocess.Popen([str(Path(sys.executable).parent / "jitbroker"), "scheduler"], cwd=ROOT,
                                        env=env, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)

    @property
    def log(self):
        return self.log_path.read_text()

    def holds_lease(self):
        state = lease.scheduler_lease()
        return state is not None and not state["expired"] and f":{self.process.pid}:" in state["holder"]

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._log.close()


@pytest.fixture
def schedulers(database_url, tmp_path):
    started = []

    def start(name, **options):
        started.append(SchedulerProcess(database_url, tmp_path, name, **options))
        return started[-1]

    yield start
    for scheduler in started:
        scheduler.stop()


@pytest.fixture
def pending_decisions(deliver, approver_auth, client, fake_epm):
    """DECISIONS tickets approved while EPM refuses: decisions waiting in the outbox, not due for an hour.
    The fake is strict: it refuses a decision for a request it never announced, as EPM does."""
    fake_epm.strict = True
    fake_epm.fail_next(DECISIONS, 503)
    for _ in range(DECISIONS):
        number = deliver(fake_epm.add_request(contract.KIND_ADMIN)).json["result"]["ticket"]
        decided = client.post(f"/api/x_bets_pmc_jit/tickets/{number}/decision", headers=approver_auth,
                              json={"decision": "Approved", "reason": "scheduler kill", "duration_unit": "once"})
        assert decided.status_code == 202, decided.get_data(as_text=True)
    Decision.update(next_attempt_at=utcnow() + timedelta(hours=1)).execute()
    assert Decision.select().where(Decision.status == contract.DELIVERY_PENDING).count() == DECISIONS
    assert fake_epm.received_count == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_scheduler_killed_mid_job_is_replaced_and_every_decision_is_delivered_once(fake_epm, pending_decisions,
                                                                                     schedulers):
    first, second = schedulers("first"), schedulers("second")
    wait_until(lambda: "started with jobs" in first.log and "started with jobs" in second.log, timeout=60,
               message="both schedulers to start")
    wait_until(lambda: first.holds_lease() or second.holds_lease(), timeout=60,
               message="one scheduler to take the lease")
    active, standby = (first, second) if first.holds_lease() else (second, first)

    # EPM applies the first decision it gets but holds its answer: the outbox job is mid-run.
    fake_epm.delay_next(120)
    Decision.update(next_attempt_at=Decision.decided_at).execute()
    wait_until(lambda: fake_epm.received_count == 1, timeout=30, message="the active scheduler to send a decision")
    assert active.holds_lease(), "killed mid-job, holding the lease"
    active.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert active.process.wait(10) == -signal.SIGKILL
    in_flight = Decision.get(Decision.status == contract.DELIVERY_SENDING)
    assert Decision.select().where(Decision.status == contract.DELIVERY_PENDING).count() == DECISIONS - 1

    wait_until(lambda: fake_epm.received_count > 1, timeout=30, message="the standby to send the decisions left")
    took = time.monotonic() - killed_at
    assert standby.holds_lease()
    wait_until(lambda: all(d.status == contract.DELIVERY_DELIVERED for d in Decision.select()),
               timeout=4 * EPM_TIMEOUT_SECONDS + 5 + 15, message="every decision to be delivered")

    assert took > 1, "the standby waited for the dead scheduler's lease to run out"
    assert fake_epm.applied_count == DECISIONS, "each decision applied once"
    assert fake_epm.received_count == DECISIONS + 1, "only the decision whose answer was lost was sent again"
    # Beyond the refused attempt made when each was decided: one send each, two for the one cut off.
    attempts = {decision.id: decision.attempts for decision in Decision.select()}
    assert attempts.pop(in_flight.id) == 3 and set(attempts.values()) == {2}
    assert Task.select().count() == DECISIONS
    assert standby.process.poll() is None
    print(f"\nscheduler killed mid-job: {DECISIONS} decisions, 1 kill, standby sent again after {took:.1f} s, "
          f"{fake_epm.applied_count} applied, 0 lost, 0 applied twice")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_jitbroker_scheduler_stops_on_its_signal_and_hands_its_lease_back_though_its_parent_ignores_sigint(
        app, schedulers, stop_signal):
    """systemd stops a service with SIGTERM, a terminal with Ctrl-C; a parent ignoring SIGINT (a script's
    background job) must not leave it running. A clean stop releases the lease for the next scheduler at once."""
    scheduler = schedulers("only", preexec_fn=ignoring_sigint)
    wait_until(scheduler.holds_lease, timeout=60, message=lambda: "the scheduler to take the lease:\n" + scheduler.log)
    scheduler.process.send_signal(stop_signal)
    assert scheduler.process.wait(15) == 0, scheduler.log
    assert f"received signal {int(stop_signal)}; stopping" in scheduler.log
    state = lease.scheduler_lease()
    assert state is None or state["expired"], "the lease was handed back, not left to run out"


def test_a_job_overrunning_its_interval_never_runs_twice_at_once_and_runs_again_after(app):
    running, most, finished = 0, 0, []
    counting = threading.Lock()

    def slow():
        nonlocal running, most
        with counting:
            running += 1
            most = max(most, running)
        # A fixed wait on purpose: a job that overruns its 1 s interval (the behaviour under test).
        time.sleep(2.5)
        with counting:
            running -= 1
            finished.append(time.monotonic())
        return "done"

    scheduler = LeasedScheduler(app, jobs=[Job("slow", slow, 1)], holder="host-a:1", lease_seconds=3,
                                heartbeat_seconds=1)
    stop = threading.Event()

    def run():
        with app.app_context():
            scheduler.run(stop)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: len(finished) >= 2, timeout=30, message="the job to run twice")
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert most == 1, "never two runs at once"
    # The ticks a run overran were neither started alongside it nor refused: they became the next run.
    assert [outcome.result for _name, outcome in scheduler.outcomes][:2] == ["done", "done"]
