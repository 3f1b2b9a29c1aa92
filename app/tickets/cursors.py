"""Keyset cursors over the newest-first ticket order: the next page starts below the last ticket shown
with an index seek, so the hundredth page costs what the first does (an OFFSET reads every row above)."""
import re
from datetime import datetime

from app.models import Task

_CURSOR_TIME = "%Y-%m-%dT%H:%M:%S.%f"

# What encode_cursor makes, exactly: a real calendar day (leap years included), a time
# to the microsecond, and an id of at most 18 digits (SQLite's integers stop at 2**63).
# The OpenAPI description publishes it, so a client can tell a cursor without asking.
_YEAR = r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DAY = (rf"(?:{_YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
        rf"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{_LEAP_YEAR}-02-29)")
CURSOR_PATTERN = rf"{_DAY}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{{6}}_[0-9]{{1,18}}"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(task):
    return f"{task.opened_at.strftime(_CURSOR_TIME)}_{task.id}"


def decode_cursor(text):
    """(opened_at, id) from a cursor, or None for anything that is not one."""
    if not isinstance(text, str) or _CURSOR.fullmatch(text) is None:
        return None
    try:
        moment, _, task_id = (text or "").partition("_")
        return datetime.strptime(moment, _CURSOR_TIME), int(task_id)
    except ValueError:
        return None


# Each condition opens with a plain range on opened_at: the index seeks to the cursor on it.
# Without it, neither database could seek on `a < x OR (a = x AND b < y)`: both walked the
# index from the newest ticket and filtered, so a page 90% down a million tickets read
# 900,000 index entries (tests/tickets/test_tickets_query_plans.py checks the plans).
def older_than(cursor):
    """Tickets after the cursor's in the newest-first order."""
    opened_at, task_id = cursor
    return (Task.opened_at <= opened_at) & ((Task.opened_at < opened_at) | (Task.id < task_id))


def newer_than(cursor):
    """Tickets before the cursor's in the newest-first order."""
    opened_at, task_id = cursor
    return (Task.opened_at >= opened_at) & ((Task.opened_at > opened_at) | (Task.id > task_id))
