"""The read-only sys_user and sys_user_group tables: the people and assignment groups the tickets name.

A ticket's requester is a name EPM sent (often `DOMAIN\\user`) and most requesters have no
broker account, so sys_user holds one record per distinct requester: sys_id derived from the
name (app/servicenow_api/fields.py), `user_name` and `name` the requester's name, `email` the
broker account's of the same user name where there is one. sys_user_group holds one record
per distinct assignment group."""
import re
import threading
import weakref
from itertools import groupby

from peewee import SQL, fn

from app.db import database
from app.models import Account, Task
from app.servicenow_api import compiler
from app.servicenow_api.fields import GROUP_TABLE, USER_TABLE, Field, reference, reference_sys_id

_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
USER_FIELDS = ("sys_id", "user_name", "name", "email")
GROUP_FIELDS = ("sys_id", "name")
# Fields no two records share (a record is one name; its sys_id is derived from the name): ordering by one
# of them decides the whole order, and ORDERBY keys after it change nothing.
UNIQUE_FIELDS = ("sys_id", "user_name", "name")


def _email_of(name_column):
    """The email of the broker account named like the user, '' without one."""
    return fn.COALESCE(Account.select(Account.email).where(Account.username == name_column), "")


# Tickets being written at once may commit out of id order (PostgreSQL's sequence hands out ids
# before commit): each catch-up reads again the names of this many ids below the newest it saw.
CATCH_UP_IDS = 1000
# Ids read below those already read when a sys_id is not among the names learned, before every name is read.
RECENT_IDS = 2000


class _Learned:
    """What one process has learned of one database's names: {sys_id: name} of the tickets with ids
    from `lowest` to `newest` (RECENT_IDS below the first lookup's newest once `recent_read`), or of every
    ticket once `complete`."""

    def __init__(self, newest):
        self.by_sys_id, self.names = {}, set()
        self.newest, self.lowest, self.recent_read, self.complete = newest, newest + 1, False, False


class NameIndex:
    """{sys_id: name} of the names one Task column holds, learned per process and database as lookups need it.

    A sys_id is a hash of the name (app/servicenow_api/fields.py), so finding the name of one means
    hashing names. A ticket's requester and assignment group are set when the ticket is made and never
    change, so what is learned stays true: a lookup reads the names of the tickets made since the last one,
    and only when a sys_id is not among the names learned, those of the RECENT_IDS tickets before them
    (the sys_ids clients ask about come from recent answers), then, still not found, every distinct name
    once. Recent tickets are read by id through the primary key; every name in one pass of the column's
    index. Each name is hashed once; names whose tickets were deleted stay: they match no ticket."""

    def __init__(self, table, column):
        self.table, self.column = table, column
        self._indexes = weakref.WeakKeyDictionary()  # database -> _Learned
        self._lock = threading.Lock()

    def resolve(self, items):
        """{sys_id: name} for the items that are sys_ids of a `table` record."""
        wanted = {item for item in items if _SYS_ID.fullmatch(item)}
        if not wanted:
            return {}
        with self._lock:
            learned = self._caught_up()
            while not wanted <= learned.by_sys_id.keys() and self._read_older(learned):
                pass
            return {sys_id: learned.by_sys_id[sys_id] for sys_id in wanted if sys_id in learned.by_sys_id}

    def matching(self, accepts):
        """The names whose sys_id `accepts(sys_id)` takes, every name read (the first time in a process and
        database; after that, only the names of tickets made since)."""
        with self._lock:
            learned = self._caught_up()
            while self._read_older(learned):
                pass
            return sorted(name for sys_id, name in learned.by_sys_id.items() if accepts(sys_id))

    def _names(self):
        return Task.select(self.column).where(self.column.is_null(False) & (self.column != ""))

    def _learn(self, learned, names):
        for (name,) in names.tuples():
            if name not in learned.names:
                learned.names.add(name)
                learned.by_sys_id[reference_sys_id(self.table, name)] = name

    def _learn_ids(self, learned, low, high=None):
        """Learn the names of the tickets with ids from `low` (below `high`): a range of the primary key,
        in its order (a DISTINCT would have the planner walk the whole of the column's index instead)."""
        ids = (Task.id >= low) if high is None else (Task.id >= low) & (Task.id < high)
        self._learn(learned, self._names().where(ids).order_by(Task.id))

    def _caught_up(self):
        newest = Task.select(fn.MAX(Task.id)).scalar() or 0
        learned = self._indexes.get(database.obj)
        if learned is None or newest < learned.newest:
            # First lookup here, or a database made again: nothing read yet.
            learned = self._indexes[database.obj] = _Learned(newest)
        else:
            self._learn_ids(learned, learned.newest - CATCH_UP_IDS + 1)
            learned.lowest = min(learned.lowest, learned.newest - CATCH_UP_IDS + 1)
            learned.newest = newest
        return learned

    def _read_older(self, learned):
        """Learn more names: the recent tickets' below those read, else every name; False once all are known."""
        if learned.complete:
            return False
        if not learned.recent_read:
            self._learn_ids(learned, learned.lowest - RECENT_IDS, learned.lowest)
            learned.lowest, learned.recent_read = learned.lowest - RECENT_IDS, True
        else:
            self._learn(learned, self._names().distinct())
            learned.complete = True
        return True


USER_NAMES = NameIndex(USER_TABLE, Task.requester)
GROUP_NAMES = NameIndex(GROUP_TABLE, Task.assignment_group)
user_sys_ids = USER_NAMES.resolve
group_sys_ids = GROUP_NAMES.resolve

# Dot-walkable fields of a reference: name -> (kind, expression made from the Task column holding the name).
# The requester is one of the columns the ticket search indexes.
USER_WALKS = {
    "sys_id": (compiler.SysIdOf(user_sys_ids, USER_NAMES.matching, searched=True), lambda column: column),
    "user_name": (compiler.Text(searched=True), lambda column: column),
    "name": (compiler.Text(searched=True), lambda column: column),
    "email": (compiler.Text(), _email_of),
}
GROUP_WALKS = {
    "sys_id": (compiler.SysIdOf(group_sys_ids, GROUP_NAMES.matching), lambda column: column),
    "name": (compiler.Text(), lambda column: column),
}


class NameTable:
    """A table whose records are the distinct non-empty values of one Task column.

    A row is (name, email): the email of the broker account of that user name, read with the page
    when asked for (sys_user's `email`), '' otherwise."""

    def __init__(self, table, column, walks, default_fields, index):
        self.table, self.column, self.walks, self.default_fields, self.index = (
            table, column, walks, default_fields, index)

    def fields(self, _context=None):
        return {name: Field(name, kind, make(self.column)) for name, (kind, make) in self.walks.items()}

    def _select(self, names=()):
        email = _email_of(self.column) if "email" in names and "email" in self.walks else SQL("''")
        return (Task.select(self.column, email).where(self.column.is_null(False) & (self.column != ""))
                .group_by(self.column))

    def find(self, query, limit, offset, context, names):
        """(rows matching `query`, one page; how many match)."""
        fields = self.fields(context)
        condition = compiler.compile_query(query, fields, context)
        deciding = _deciding_order(query.order_by)
        if deciding and deciding[-1][0] == "sys_id":
            return self._find_in_sys_id_order(condition, deciding, fields, limit, offset, names)
        select = self._select(names).where(condition)
        orderings = compiler.order_keys(query, fields)
        page = select.order_by(*orderings, self.column) if orderings else select.order_by(self.column)
        return list(page.limit(limit).offset(offset).tuples()), self._select().where(condition).count()

    def _find_in_sys_id_order(self, condition, ordering, fields, limit, offset, names):
        """`find` for an order that ends with sys_id: the sys_id is a hash of the name the database cannot
        compute, so the column's own order would be the names' order. Every matching record is read, in the
        order of the keys before sys_id (their values selected after the row's), and the records those keys
        tie are put in sys_id order here. A table holds one record per distinct requester or group, so this
        reads a few thousand short rows, not the tickets."""
        *before, (_sys_id, descending) = ordering
        keys = [fields[name].expression for name, _descending in before]
        select = self._select(names).select_extend(*keys).where(condition)
        if keys:
            select = select.order_by(*[key.desc() if down else key.asc()
                                       for key, (_name, down) in zip(keys, before)])
        ordered = []
        for _tied_on, tied in groupby(select.tuples(), key=lambda row: row[2:]):
            ordered += sorted(tied, key=lambda row: reference_sys_id(self.table, row[0]), reverse=descending)
        return [row[:2] for row in ordered[offset:offset + limit]], len(ordered)

    def get(self, sys_id, names):
        name = self.index.resolve([sys_id]).get(sys_id)
        return self._select(names).where(self.column == name).tuples().first() if name else None

    def values(self, row, _context, names):
        name, email = row
        item = reference(self.table, name)
        walked = {"sys_id": item.sys_id, "user_name": name, "name": name}
        if "email" in self.walks:
            walked["email"] = email
        return {field: (walked[field], walked[field]) for field in names if field in walked}


def _deciding_order(order_by):
    """The (field, descending) keys of `order_by` up to the first of UNIQUE_FIELDS: those that decide the order."""
    deciding = []
    for name, descending in order_by:
        deciding.append((name, descending))
        if name in UNIQUE_FIELDS:
            break
    return deciding


USERS = NameTable(USER_TABLE, Task.requester, USER_WALKS, USER_FIELDS, USER_NAMES)
GROUPS = NameTable(GROUP_TABLE, Task.assignment_group, GROUP_WALKS, GROUP_FIELDS, GROUP_NAMES)
