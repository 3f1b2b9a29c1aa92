"""gunicorn.conf.py: the worker settings every gunicorn started in the project folder runs with."""
import runpy

from app.settings import ROOT, Settings


def conf(monkeypatch, **environ):
    for name in ("WEB_CONCURRENCY", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_workers_are_threaded_and_each_thread_can_have_a_pooled_connection(monkeypatch):
    settings = conf(monkeypatch)
    assert (settings["worker_class"], settings["workers"]) == ("gthread", 2)
    assert 1 < settings["threads"] <= Settings().max_connections


def test_the_environment_sets_workers_and_threads(monkeypatch):
    settings = conf(monkeypatch, WEB_CONCURRENCY="3", WEB_THREADS="4")
    assert (settings["workers"], settings["threads"]) == (3, 4)
