"""Waiting in tests: on a condition, with a deadline, never for a fixed time."""
import time


def wait_until(condition, timeout=15, message="the condition", interval=0.02):
    """Call `condition` until it returns something true, and return that; at the deadline
    (`timeout` seconds) fail with `message`, which names what was awaited (a callable is
    called then, for what is only worth reading on failure)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for "
                                 f"{message() if callable(message) else message}")
        time.sleep(interval)
