"""A separate broker process for the token-sharing tests, driven one JSON command per line.

`python -m tests.epm.token_process` reads commands on stdin and answers each with one
JSON line on stdout:

- {"op": "open", "database_url": ...}: build the app on that database, as a new process
  would (nothing cached in memory, clocks unmoved); answers {"pid": ...}.
- {"op": "call"}: one EPM API call (a request-list read) with a client built from the
  stored configuration; answers the token requests this process made for it, a digest
  of the token it used, and how long it took.
- {"op": "advance", "seconds": n}: move this process's clocks forward (token expiry).

Every answer has "ok"; a failed command answers {"ok": false, "error": ...}. Besides the
answers, a call that finds another process fetching the token prints {"event": "waiting"}
once, as it starts waiting for that fetch's result.
"""
import hashlib
import json
import os
import sys
import time
import traceback
import types
from datetime import timedelta

TIMEOUT_SECONDS = 1.5  # the EPM time-out of this process's client: its claims last this + the margin


def token_digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:16]


class Process:
    def __init__(self, answers):
        from app.epm import tokens

        self.tokens = tokens
        self.real_wall_clock = tokens._wall_clock
        self.offset = 0.0
        self.context = None
        self.answers = answers
        self.said_waiting = False
        # The token module sleeps between looks at a row another process has claimed: that
        # first sleep is the moment this process waits on the other's fetch.
        tokens.time = types.SimpleNamespace(monotonic=time.monotonic, sleep=self._wait_on_claim)

    def _wait_on_claim(self, seconds):
        if not self.said_waiting:
            self.said_waiting = True
            print(json.dumps({"event": "waiting"}), file=self.answers, flush=True)
        time.sleep(seconds)

    def open(self, database_url):
        from app import create_app

        if self.context is not None:
            self.context.pop()
        app = create_app({"database_url": database_url, "secret_key": "test-secret-key", "TESTING": True})
        self.context = app.app_context()
        self.context.push()
        self.tokens.clear_token_cache()
        self.advance(-self.offset)
        return {"pid": os.getpid()}

    def advance(self, seconds):
        self.offset += seconds
        offset = self.offset
        self.tokens._clock = lambda: time.monotonic() + offset
        self.tokens._wall_clock = lambda: self.real_wall_clock() + timedelta(seconds=offset)
        return {}

    def call(self):
        from app import contract
        from app.db import database
        from app.epm.client import EpmClient
        from app.models import Configuration

        with database.connection_context():
            client = EpmClient.from_configuration(Configuration.default(), timeout=TIMEOUT_SECONDS)
        before = self.tokens.token_fetch_count()
        self.said_waiting = False
        started = time.monotonic()
        client.list_requests(contract.KIND_APPLICATION, page_size=1)
        elapsed = time.monotonic() - started
        used = self.tokens._tokens[client._token_key].value
        return {"fetches": self.tokens.token_fetch_count() - before, "token": token_digest(used),
                "elapsed": elapsed}


def main():
    # Answers get the real stdout to themselves; the app's log lines (JSON on stdout) go to stderr.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    process = Process(answers)
    for line in sys.stdin:
        command = json.loads(line)
        op = command.pop("op")
        try:
            answer = {"ok": True, **getattr(process, op)(**command)}
        except Exception as error:  # reported to the test, which fails with it
            answer = {"ok": False, "error": f"{error.__class__.__name__}: {error}",
                      "traceback": traceback.format_exc()}
        print(json.dumps(answer), file=answers, flush=True)


if __name__ == "__main__":
    main()
