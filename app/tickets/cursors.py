"""Keyset cursors over the newest-first ticket order (`task_newest`: opened_at DESC, id DESC).

A cursor names the last ticket a page showed; the next page starts below it with an
index seek, so the hundredth page costs what the first does (an OFFSET would read and
throw away every row above it).
"""
from datetime import datetime

from app.models import Task

_CURSOR_TIME = "%Y-%m-%dT%H:%M:%S.%f"


def encode_cursor(task):
    return f"{task.opened_at.strftime(_CURSOR_TIME)}_{task.id}"


def decode_cursor(text):
    """(opened_at, id) from a cursor, or None for anything that is not one."""
    try:
        moment, _, task_id = (text or "").partition("_")
        return datetime.strptime(moment, _CURSOR_TIME), int(task_id)
    except ValueError:
        return None


def older_than(cursor):
    opened_at, task_id = cursor
    return (Task.opened_at < opened_at) | ((Task.opened_at == opened_at) & (Task.id < task_id))


def newer_than(cursor):
    opened_at, task_id = cursor
    return (Task.opened_at > opened_at) | ((Task.opened_at == opened_at) & (Task.id > task_id))
