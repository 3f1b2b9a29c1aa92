"""gunicorn.conf.py: the worker settings every gunicorn started in the project folder runs with."""
import runpy

from app.settings import ROOT, Settings


def conf(monkeypatch, **environ):
    for name in ("WEB_CONCURRENCY", "WEB_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_two_sync_workers_by_default(monkeypatch):
    settings = conf(monkeypatch)
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("sync", 2, 1)


def test_threads_make_gthread_workers_and_each_thread_can_have_a_pooled_connection(monkeypatch):
    settings = conf(monkeypatch, WEB_CONCURRENCY="3", WEB_THREADS="8")
    assert (settings["worker_class"], settings["workers"], settings["threads"]) == ("gthread", 3, 8)
    assert settings["threads"] <= Settings().max_connections


def test_gunicorn_leaves_the_request_line_limit_to_the_application(monkeypatch):
    from app.http import MAX_REQUEST_LINE

    assert conf(monkeypatch)["limit_request_line"] == 0
    assert MAX_REQUEST_LINE >= 32 * 1024


def test_a_worker_leaves_what_loading_the_app_made_out_of_its_full_collections(monkeypatch):
    import gc

    from app import create_app

    create_app({"database_url": "sqlite:///:memory:", "secret_key": "gc-freeze-test"})
    gc.collect()
    tracked = len(gc.get_objects())  # what loading the app left reachable
    try:
        conf(monkeypatch)["post_worker_init"](None)
        assert gc.get_freeze_count() > tracked * 0.99, "what loading the app left is frozen"
        assert len(gc.get_objects()) < tracked // 10, "a full collection walks almost none of it"
    finally:
        gc.unfreeze()
