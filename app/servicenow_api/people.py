"""The read-only sys_user and sys_user_group tables: the people and assignment groups the tickets name.

A ticket's requester is a name EPM sent (often `DOMAIN\\user`) and most requesters have no
broker account, so sys_user holds one record per distinct requester: sys_id derived from the
name (app/servicenow_api/fields.py), `user_name` and `name` the requester's name, `email` the
broker account's of the same user name where there is one. sys_user_group holds one record
per distinct assignment group."""
import re

from peewee import SQL, fn

from app.models import Account, Task
from app.servicenow_api import compiler
from app.servicenow_api.fields import GROUP_TABLE, USER_TABLE, Field, reference, reference_sys_id

_SYS_ID = re.compile(r"^[0-9a-f]{32}$")
USER_FIELDS = ("sys_id", "user_name", "name", "email")
GROUP_FIELDS = ("sys_id", "name")


def _email_of(name_column):
    """The email of the broker account named like the user, '' without one."""
    return fn.COALESCE(Account.select(Account.email).where(Account.username == name_column), "")


def _resolver(table, column):
    def resolve(items):
        """{sys_id: name} for the items that are sys_ids of a `table` record."""
        wanted = {item for item in items if _SYS_ID.match(item)}
        if not wanted:
            return {}
        names = Task.select(column).where(column.is_null(False) & (column != "")).distinct().tuples()
        found = {reference_sys_id(table, name): name for (name,) in names}
        return {sys_id: found[sys_id] for sys_id in wanted if sys_id in found}
    return resolve


user_sys_ids = _resolver(USER_TABLE, Task.requester)
group_sys_ids = _resolver(GROUP_TABLE, Task.assignment_group)

# Dot-walkable fields of a reference: name -> (kind, expression made from the Task column holding the name).
# The requester is one of the columns the ticket search indexes.
USER_WALKS = {
    "sys_id": (compiler.Reference(user_sys_ids, searched=True), lambda column: column),
    "user_name": (compiler.Text(searched=True), lambda column: column),
    "name": (compiler.Text(searched=True), lambda column: column),
    "email": (compiler.Text(), _email_of),
}
GROUP_WALKS = {
    "sys_id": (compiler.Reference(group_sys_ids), lambda column: column),
    "name": (compiler.Text(), lambda column: column),
}


class NameTable:
    """A table whose records are the distinct non-empty values of one Task column.

    A row is (name, email): the email of the broker account of that user name, read with the page
    when asked for (sys_user's `email`), '' otherwise."""

    def __init__(self, table, column, walks, default_fields):
        self.table, self.column, self.walks, self.default_fields = table, column, walks, default_fields

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
        select = self._select(names).where(condition)
        orderings = [fields[name].expression.desc() if descending else fields[name].expression.asc()
                     for name, descending in query.order_by]
        page = select.order_by(*orderings, self.column) if orderings else select.order_by(self.column)
        return list(page.limit(limit).offset(offset).tuples()), self._select().where(condition).count()

    def get(self, sys_id, names):
        name = _resolver(self.table, self.column)([sys_id]).get(sys_id)
        return self._select(names).where(self.column == name).tuples().first() if name else None

    def values(self, row, _context, names):
        name, email = row
        item = reference(self.table, name)
        walked = {"sys_id": item.sys_id, "user_name": name, "name": name}
        if "email" in self.walks:
            walked["email"] = email
        return {field: (walked[field], walked[field]) for field in names if field in walked}


USERS = NameTable(USER_TABLE, Task.requester, USER_WALKS, USER_FIELDS)
GROUPS = NameTable(GROUP_TABLE, Task.assignment_group, GROUP_WALKS, GROUP_FIELDS)
