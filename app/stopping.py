"""Stopping a long-running process (the scheduler, the fake EPM) on SIGTERM or SIGINT (Ctrl-C)."""
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(on_signal=None):
    """An event set by SIGINT or SIGTERM, whatever the process inherited: a parent that ignores SIGINT
    (a background job of a script, a test runner) would otherwise leave the process running after either.

    `on_signal(signum)`, when given, runs first (to log why the process stops). Call it from the main thread."""
    stop = threading.Event()

    def request_stop(signum, _frame):
        if on_signal is not None:
            on_signal(signum)
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    return stop
