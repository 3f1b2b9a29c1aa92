"""The tables the Table API serves: the four ticket tables, read-only sys_user and sys_user_group.

Each answers the same questions, so the views treat them alike: which fields it has, which it
shows by default, a page of records matching a query with the total, one record by sys_id, a
record's values, and a writer of a record's JSON text for the fields and display mode asked.
A page is read in one query with every field it shows (no query per record): `find` and `get` are
told the fields asked for, and `values` only arranges what they read."""
from app import contract
from app.models import Configuration
from app.servicenow_api import records, ticket_json
from app.servicenow_api.fields import Context, dumps, written_record
from app.servicenow_api.people import GROUPS, USERS


class TicketTable:
    """incident, change_request, sc_task or sc_req_item: the broker's tickets of one type."""

    def __init__(self, ticket_type):
        self.ticket_type = ticket_type
        self.default_fields = records.FIELDS

    def context(self, base_url):
        return Context(self.ticket_type, Configuration.default(), base_url)

    def fields(self, context):
        return records.task_fields(context)

    def find(self, query, limit, offset, context, names):
        return records.find_records(self.ticket_type, query, limit, offset, context, names)

    def get(self, sys_id, context, names):
        return records.get_record(self.ticket_type, sys_id, context, names)

    def values(self, task, context, names):
        return records.record_values(task, context, names)

    def writer(self, names, context, answer):
        return ticket_json.record_writer(names, context, answer)


class PeopleTable:
    """sys_user or sys_user_group: names the tickets hold, as records."""

    def __init__(self, names):
        self.names = names
        self.default_fields = names.default_fields

    def context(self, base_url):
        return Context(base_url=base_url)

    def fields(self, context):
        return self.names.fields(context)

    def find(self, query, limit, offset, context, names):
        return self.names.find(query, limit, offset, context, names)

    def get(self, sys_id, _context, names):
        return self.names.get(sys_id, names)

    def values(self, name, context, names):
        return self.names.values(name, context, names)

    def writer(self, names, context, answer):
        return lambda row: dumps(written_record(self.values(row, context, names), names, answer, context))


TABLES = {**{name: TicketTable(ticket_type) for name, ticket_type in contract.TICKET_TYPES.items()},
          "sys_user": PeopleTable(USERS), "sys_user_group": PeopleTable(GROUPS)}
TICKET_TABLES = tuple(contract.TICKET_TYPES)
