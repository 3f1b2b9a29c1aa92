"""`python -m bench.generate --database-url URL --tickets N`: fill a broker database with tickets, fast.

Bulk inserts in big transactions (executemany on SQLite, COPY on PostgreSQL) of
Incident tickets, 80% Application Access and 20% Admin Access, each with its JIT record, and
the number counter moved past them, so the ticket list, search and decision pages see a
broker with that much history. The last day is the same at every size: the newest RECENT
tickets await a decision, one a minute up to now; the others were closed, opened evenly over
the two years before that day. So what differs between sizes is the history, not the day's
traffic that the list of what awaits a decision and its count read.
Requesters, hosts and applications repeat the way they do in a real estate: by default
10,000 people, 20,000 machines and 8 builds of each of 60 applications, so at a million
tickets a search for a person finds about a hundred tickets, a machine fifty, a build
thousands. `Estate.grown_to(count)` makes an estate that grew with its history instead (the
pages phase compares 10,000 tickets with 1,000,000 on it): the same tickets per person,
machine and build at every size (a build is requested for a while, then replaced by the
next: a longer history holds more builds, not more requests of each), so a page shows as
many rows at either size and the ratio between them is what the history alone costs.
Work notes and raw deliveries are left out: the list and search never read them.
"""
import argparse
import csv
import hashlib
import io
import json
import random
import time
from contextlib import contextmanager
from datetime import datetime, timedelta

from peewee import ProgrammingError

from app import contract
from app.db import database, is_sqlite
from app.models import AdminTicket, ApplicationAccessTicket, NumberCounter, Task
from app.tickets import search

BATCH = 50_000
TENANT_ID = "0d3c2b1a-5f4e-4d3c-9b2a-1f0e9d8c7b6a"
SPAN = timedelta(days=730)
# The newest tickets, awaiting a decision, and how far apart they arrived; the closed history ends a
# LAST_DAY before now.
RECENT = 200
RECENT_STEP = timedelta(minutes=1)
LAST_DAY = timedelta(days=1)
APPLICATIONS = [f"{name} {edition}" for name in (
    "Example VPN Client", "Zoom", "Visual Studio Code", "Python", "Wireshark", "Notepad++", "7-Zip", "Git",
    "Docker Desktop", "PuTTY", "WinSCP", "Postman", "Slack", "Teams", "Firefox", "Chrome", "Acrobat Reader",
    "Citrix Workspace", "Power BI Desktop", "SQL Server Management Studio") for edition in ("", "Setup", "Updater")]
PUBLISHERS = ["Example Networks Inc.", "Zoom Video Communications", "Microsoft Corporation",
              "Python Software Foundation",
              "Wireshark Foundation", "Don Ho", "Igor Pavlov", "Git", "Docker Inc", "Simon Tatham", "Martin Prikryl",
              "Postman Inc", "Slack Technologies", "Mozilla Corporation", "Google LLC", "Adobe Inc.", "Citrix Systems"]
SITES = ["LIS", "BER", "NYC", "SFO", "LON", "PAR", "MAD", "TOR", "SYD", "SIN"]
GROUPS = ["Service Desk", "Workplace Lisbon", "Workplace Berlin", "Engineering Laptops", "Finance IT",
          "Security Operations", "Server Admins", "Developers"]
SURNAMES = ["rivera", "kowalski", "chen", "novak", "silva", "muller", "smith", "garcia", "ivanova", "okafor",
            "tanaka", "haddad", "larsen", "moreau", "rossi", "santos", "nguyen", "cohen", "fischer", "khan"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"
REASONS = ["Needed for work", "Customer demo tomorrow", "Installing the update IT asked for",
           "Debugging a production incident", "Quarterly report", "New laptop setup"]


class Estate:
    """How many people, machines and builds of each application the tickets are spread over."""

    def __init__(self, people=10_000, machines=20_000, builds=8):
        self.people, self.machines, self.builds = people, machines, builds

    @classmethod
    def grown_to(cls, count):
        """About 100 tickets per person, 50 per machine and 130 per build of each of the 60 applications
        (80% of the tickets ask for one) for `count` tickets."""
        return cls(people=max(count // 100, 1), machines=max(count // 50, 1), builds=max(count // 10_000, 1))


def requester(index):
    """One of 10,000 people: CORP\\<initial><surname><n>."""
    return f"CORP\\{LETTERS[index % 26]}{SURNAMES[index % 20]}{index // 520}"


def host(index):
    """One of 20,000 machines: LT-<site>-<4 digits>."""
    return f"LT-{SITES[index % 10]}-{index // 10:04d}"


def _rows(count, first_id, first_number, now, rng, estate):
    recent_count = min(RECENT, count)
    closed_until = now - max(LAST_DAY, RECENT_STEP * recent_count)
    start = closed_until - SPAN
    step = SPAN / max(count - recent_count, 1)
    closed = INCIDENT.closed_state
    for offset in range(count):
        task_id = first_id + offset
        recent = offset >= count - recent_count
        opened = now - RECENT_STEP * (count - 1 - offset) if recent else start + step * offset
        is_admin = rng.random() < 0.2
        person = requester(rng.randrange(estate.people))
        machine = host(rng.randrange(estate.machines))
        state = INCIDENT.new_state if recent else closed
        reason = rng.choice(REASONS)
        if is_admin:
            subject, publisher, duration = "Admin access", None, str(rng.choice((900, 1800, 3600)))
            description = f"Admin Access: {person} requests administrative elevation"
            file_hash, details = None, reason
        else:
            app_index = rng.randrange(len(APPLICATIONS))
            subject, duration = APPLICATIONS[app_index].strip(), None
            publisher = PUBLISHERS[app_index // 3 % len(PUBLISHERS)]
            description = f"Application Access: {person} requests {subject}"
            # One of the builds of each application the estate has.
            file_hash = hashlib.sha256(f"{subject} {rng.randrange(estate.builds)}".encode()).hexdigest()
            details = search.search_details(reason, {"sha256Hash": file_hash})
        bits = f"{rng.getrandbits(128):032x}"
        request_id = f"{bits[:8]}-{bits[8:12]}-4{bits[13:16]}-8{bits[17:20]}-{bits[20:]}"
        kind = contract.KIND_ADMIN if is_admin else contract.KIND_APPLICATION
        task = (task_id, f"{task_id:08x}{bits[8:]}", INCIDENT.table, INCIDENT.format_number(first_number + offset),
                state, description[:160], rng.choice(GROUPS), "", kind, request_id, person, machine, subject,
                publisher, details, file_hash, duration, opened, opened,
                None if recent else opened + timedelta(minutes=30))
        common = (f"{bits[8:]}{task_id:08x}", task_id, request_id, TENANT_ID, str(100000 + task_id),
                  opened, reason, not recent, opened, opened)
        if is_admin:
            jit = common + (machine, "7e5d4c3b-2a19-4807-b6f5-e4d3c2b1a098", f"S-1-5-21-{task_id}", person, duration)
        else:
            jit = common + (json.dumps({"user": person, "hostName": machine, "productName": subject,
                                        "publisher": publisher, "action": "Elevate",
                                        "reason": reason, "sha256Hash": file_hash}, sort_keys=True),)
        yield is_admin, task, jit


INCIDENT = contract.INCIDENT
TASK_COLUMNS = ("id", "sys_id", "sys_class_name", "number", "state", "short_description", "assignment_group",
                "category", "kind", "request_id", "requester", "host", "subject", "publisher", "search_details",
                "sha256_hash", "requested_duration",
                "opened_at", "updated_at", "closed_at")
JIT_COLUMNS = ("sys_id", "task_id", "request_id", "tenant_id", "epm_ticket_number", "requested_at", "reason",
               "decision_final", "created_at", "updated_at")
ADMIN_COLUMNS = JIT_COLUMNS + ("computer_id", "group_id", "user_id", "user_name", "duration_requested")
APPLICATION_COLUMNS = JIT_COLUMNS + ("request_info",)


def _insert(table, columns, rows):
    if not rows:
        return
    if is_sqlite():
        marks = ", ".join("?" * len(columns))
        database.cursor().executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([r"\N" if value is None else value for value in row])
    buffer.seek(0)
    database.cursor().copy_expert(
        f'COPY "{table}" ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv, NULL \'\\N\')', buffer)


def generate(count, seed=1, estate=None):
    """Add `count` Incident tickets after any already there, spread over `estate` (the default Estate);
    returns seconds taken."""
    started = time.monotonic()
    rng = random.Random(seed)
    first_id = (Task.select(Task.id).order_by(Task.id.desc()).scalar() or 0) + 1
    counter = NumberCounter.get_or_none(NumberCounter.table == INCIDENT.table)
    first_number = counter.next_number if counter else INCIDENT.first_number
    now = datetime.utcnow().replace(microsecond=0)
    generated = _rows(count, first_id, first_number, now, rng, estate or Estate())
    if is_sqlite():
        # A bulk load: a big page cache, and no fsync until the end (the benchmark's own database).
        database.execute_sql("PRAGMA cache_size = -262144")
        database.execute_sql("PRAGMA synchronous = OFF")
    with _bulk_load([Task, AdminTicket, ApplicationAccessTicket]):
        _load(generated, count)
    _finish(count, first_number)
    return round(time.monotonic() - started, 1)


def _load(generated, count):
    done = 0
    while done < count:
        tasks, admins, applications = [], [], []
        for is_admin, task, jit in generated:
            tasks.append(task)
            (admins if is_admin else applications).append(jit)
            if len(tasks) == BATCH:
                break
        with database.atomic():
            _insert(Task._meta.table_name, TASK_COLUMNS, tasks)
            _insert(AdminTicket._meta.table_name, ADMIN_COLUMNS, admins)
            _insert(ApplicationAccessTicket._meta.table_name, APPLICATION_COLUMNS, applications)
        done += len(tasks)


def _finish(count, first_number):
    with database.atomic():
        NumberCounter.insert(table=INCIDENT.table, next_number=first_number + count).on_conflict(
            conflict_target=[NumberCounter.table], update={NumberCounter.next_number: first_number + count}).execute()
        if not is_sqlite():
            for model in (Task, AdminTicket, ApplicationAccessTicket):
                table = model._meta.table_name
                database.execute_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                     f"(SELECT COALESCE(MAX(id), 1) FROM \"{table}\"))")
    _settle()


def _settle():
    """Leave the database as a broker with this much history has it: statistics gathered and
    every written page on disk.

    Without this, PostgreSQL's checkpointer spends the next minutes writing out the load's
    dirty buffers and each first read of a loaded row sets its hint bits (a page write),
    both while the list pages are measured; a database with a year of history has long
    settled. SQLite's WAL is copied into the database file and emptied.
    """
    if is_sqlite():
        database.execute_sql("ANALYZE")
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return
    database.execute_sql("VACUUM (ANALYZE)")
    try:
        database.execute_sql("CHECKPOINT")
    except ProgrammingError:
        pass  # a role that may not checkpoint: the checkpointer writes the pages in its own time


@contextmanager
def _bulk_load(models):
    """Drop the tables' secondary indexes (and SQLite's search triggers) for the load, then build
    them again in one pass each: much faster than updating them row by row."""
    tables = [model._meta.table_name for model in models]
    if is_sqlite():
        marks = ", ".join("?" * len(tables))
        saved = database.execute_sql(
            f"SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL "
            f"AND tbl_name IN ({marks})", tables).fetchall()
    else:
        saved = [("index", name, sql) for name, sql in database.execute_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s) AND indexname NOT IN "
            "(SELECT conname FROM pg_constraint)", (tables,)).fetchall()]
    with database.atomic():
        for kind, name, _sql in saved:
            database.execute_sql(f'DROP {kind.upper()} "{name}"')
    yield
    with database.atomic():
        for _kind, _name, sql in saved:
            database.execute_sql(sql)
        if is_sqlite() and database.table_exists("task_search"):
            search.refill_sqlite_index()
        if not is_sqlite() and any(name == "task_search_trgm" for _kind, name, _sql in saved):
            # An index's definition does not carry its statistics target.
            search.keep_search_statistics()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="sqlite:///path or postgresql://...")
    parser.add_argument("--tickets", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    from bench import broker

    broker.prepare(args.database_url)
    with broker.broker_app(args.database_url):
        seconds = generate(args.tickets, args.seed)
    print(f"added {args.tickets} tickets in {seconds} s")


if __name__ == "__main__":
    main()
