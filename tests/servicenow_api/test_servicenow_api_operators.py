"""Each encoded-query operator, compiled to SQL, selects exactly the tickets a plain Python filter over the same rows
selects, on SQLite and PostgreSQL."""
import json
from datetime import datetime

import pytest

from app import contract
from app.models import ApplicationAccessTicket, Configuration, Task
from app.servicenow_api.compiler import NoRows, compile_query
from app.servicenow_api.fields import Context, reference_sys_id
from app.servicenow_api.query import parse_query
from app.servicenow_api.records import task_fields
from app.tickets import search
from tests import factories
from tests.conftest import WEBHOOK, basic_auth

# (short_description, requester, assignment_group, state, opened_at, EPM's final decision)
ROWS = [
    ("VPN access for Jane", "CORP\\mrivera", "Windows Admins", 1, datetime(2026, 1, 1, 10, 0, 0, 400000), None),
    ("vpn Access", "CORP\\jdoe", "", 2, datetime(2026, 1, 1, 10, 0, 1), "Approved"),
    ("Printer 50% off_line \\ now", None, "Linux", 3, datetime(2026, 1, 2, 9, 30, 0, 999999), "Denied"),
    ("", "corp\\mrivera", "Windows Admins", 6, datetime(2026, 1, 3, 0, 0, 0), None),
    ("Access to payroll", "CORP\\jdoe", "Linux", 7, datetime(2026, 2, 1, 12, 0, 0, 1), "approved"),
    ("printer 500 offline", "CORP\\asmith", "", 1, datetime(2025, 12, 31, 23, 59, 59, 500000), None),
]
STATE_LABELS = dict(contract.INCIDENT.states)


@pytest.fixture
def stored(app):
    """The ROWS as incidents INC0010001.., each with its JIT record; the plain rows, keyed by number."""
    plain = {}
    for index, (description, requester, group, state, opened_at, final) in enumerate(ROWS, start=1):
        number = f"INC{10000 + index:07d}"
        task = Task.create(sys_class_name="incident", number=number, state=state, short_description=description,
                           assignment_group=group, kind=contract.KIND_APPLICATION, request_id=f"r{index}",
                           requester=requester, subject="app", opened_at=opened_at, updated_at=opened_at)
        ApplicationAccessTicket.create(task=task, request_id=f"r{index}", final_decision=final,
                                       decision_final=final is not None)
        plain[number] = {"number": number, "short_description": description, "opened_by": requester,
                         "assignment_group": group, "state": state, "opened_at": opened_at, "final": final}
    return plain


def selected(query):
    """The numbers of the incidents `query` selects, through the SQL it compiles to."""
    context = Context(contract.INCIDENT, Configuration.default(), "https://jit.example.com")
    try:
        where = compile_query(parse_query(query), task_fields(context), context)
    except NoRows:
        return set()
    return {task.number for task in Task.select(Task.number).where(where)}


def expected(stored, predicate):
    return {number for number, row in stored.items() if predicate(row)}


def text(row, name):
    return row[name] or ""


def second(row):
    return row["opened_at"].replace(microsecond=0)


def approval(row):
    if row["final"]:
        return "approved" if row["final"].casefold() == "approved" else "rejected"
    return "requested"


CASES = {
    "=": [("short_description=vpn Access", lambda r: r["short_description"] == "vpn Access"),
          ("opened_by=CORP\\jdoe", lambda r: r["opened_by"] == "CORP\\jdoe"),
          ("assignment_group=", lambda r: not r["assignment_group"]),
          ("number=inc0010002", lambda r: r["number"] == "INC0010002"),
          ("state=In Progress", lambda r: r["state"] == 2),
          ("approval=approved", lambda r: approval(r) == "approved"),
          ("opened_at=2026-01-01 10:00:00", lambda r: second(r) == datetime(2026, 1, 1, 10, 0, 0))],
    "!=": [("opened_by!=CORP\\jdoe", lambda r: r["opened_by"] != "CORP\\jdoe"),
           ("state!=1", lambda r: r["state"] != 1),
           ("opened_at!=2026-01-01 10:00:00", lambda r: second(r) != datetime(2026, 1, 1, 10, 0, 0))],
    "LIKE": [("short_descriptionLIKEvpn", lambda r: "vpn" in text(r, "short_description").lower()),
             ("short_descriptionLIKE50%", lambda r: "50%" in text(r, "short_description")),
             ("short_descriptionLIKEoff_line", lambda r: "off_line" in text(r, "short_description")),
             ("short_descriptionLIKE\\", lambda r: "\\" in text(r, "short_description")),
             ("opened_by.user_nameLIKEMRIVERA", lambda r: "mrivera" in text(r, "opened_by").lower())],
    "NOT LIKE": [("short_descriptionNOT LIKEprinter",
                  lambda r: "printer" not in text(r, "short_description").lower())],
    "STARTSWITH": [("short_descriptionSTARTSWITHprinter",
                    lambda r: text(r, "short_description").lower().startswith("printer")),
                   ("opened_bySTARTSWITHcorp\\j", lambda r: text(r, "opened_by").lower().startswith("corp\\j"))],
    "ENDSWITH": [("short_descriptionENDSWITHACCESS",
                  lambda r: text(r, "short_description").lower().endswith("access"))],
    "IN": [("stateIN1,3", lambda r: r["state"] in (1, 3)),
           ("opened_byINCORP\\jdoe,CORP\\asmith", lambda r: r["opened_by"] in ("CORP\\jdoe", "CORP\\asmith")),
           ("numberINinc0010001,INC0010006", lambda r: r["number"] in ("INC0010001", "INC0010006"))],
    "NOT IN": [("assignment_groupNOT INLinux,Windows Admins",
                lambda r: r["assignment_group"] not in ("Linux", "Windows Admins")),
               ("stateNOT INNew,Closed", lambda r: r["state"] not in (1, 7))],
    "<": [("opened_at<2026-01-01 10:00:01", lambda r: r["opened_at"] < datetime(2026, 1, 1, 10, 0, 1)),
          ("state<3", lambda r: r["state"] < 3)],
    "<=": [("opened_at<=2026-01-01 10:00:00", lambda r: second(r) <= datetime(2026, 1, 1, 10, 0, 0))],
    ">": [("opened_at>2026-01-02 09:30:00", lambda r: second(r) > datetime(2026, 1, 2, 9, 30, 0)),
          ("opened_at>javascript:gs.dateGenerate('2026-01-01','10:00:00')",
           lambda r: second(r) > datetime(2026, 1, 1, 10, 0, 0))],
    ">=": [("opened_at>=2026-01-02 09:30:00", lambda r: second(r) >= datetime(2026, 1, 2, 9, 30, 0)),
           ("state>=6", lambda r: r["state"] >= 6)],
    "BETWEEN": [("opened_atBETWEEN2026-01-01 10:00:00@2026-01-02 09:30:00",
                 lambda r: datetime(2026, 1, 1, 10) <= second(r) <= datetime(2026, 1, 2, 9, 30)),
                ("opened_atBETWEENjavascript:gs.dateGenerate('2026-01-01','start')@"
                 "javascript:gs.dateGenerate('2026-01-31','end')", lambda r: second(r).month == 1 and
                 second(r).year == 2026),
                ('opened_atBETWEENjavascript:gs.dateGenerate("2026-01-01 10:00:01")@'
                 'javascript:gs.dateGenerate("2026-01-03 00:00:00")',
                 lambda r: datetime(2026, 1, 1, 10, 0, 1) <= second(r) <= datetime(2026, 1, 3)),
                ("stateBETWEEN2@6", lambda r: 2 <= r["state"] <= 6)],
    "ISEMPTY": [("opened_byISEMPTY", lambda r: not r["opened_by"]),
                ("short_descriptionISEMPTY", lambda r: not r["short_description"])],
    "ISNOTEMPTY": [("assignment_groupISNOTEMPTY", lambda r: bool(r["assignment_group"]))],
    "ANYTHING": [("opened_byANYTHING", lambda r: True)],
}


@pytest.mark.parametrize("operator", list(CASES))
def test_each_operator_selects_what_a_python_filter_selects(stored, operator):
    for query, predicate in CASES[operator]:
        assert selected(query) == expected(stored, predicate), query


def test_or_binds_tighter_than_and_and_nq_joins_whole_queries(stored):
    query = "state=1^short_descriptionLIKEvpn^ORshort_descriptionLIKEprinter^NQopened_by=CORP\\jdoe^state=7"

    assert selected(query) == expected(stored, lambda r: (
        r["state"] == 1 and ("vpn" in text(r, "short_description").lower()
                             or "printer" in text(r, "short_description").lower()))
        or (r["opened_by"] == "CORP\\jdoe" and r["state"] == 7))


@pytest.mark.parametrize("query, wanted", [
    ("state=1^NQ", {"INC0010001", "INC0010006"}), ("^NQnumber=INC0010002", {"INC0010002"}),
    ("state=1^NQ^NQnumber=INC0010002", {"INC0010001", "INC0010006", "INC0010002"}),
    ("number=INC0010002^NQ^", {"INC0010002"}), ("number=INC0010002^NQORDERBYnumber", {"INC0010002"}),
    ("number=INC0010002^NQEQ", {"INC0010002"}),
])
def test_an_empty_nq_part_adds_nothing_to_the_answer(stored, query, wanted):
    # An ^NQ part with no term is left out, as an empty ^ part is: it never ORs "every record" into the answer.
    assert selected(query) == wanted


def test_a_query_of_empty_nq_parts_only_selects_every_record_as_no_query_does(stored):
    assert selected("^NQ") == selected("^NQ^") == selected("") == set(stored)


def test_a_time_stored_with_microseconds_equals_its_second(stored):
    assert selected("opened_at=2026-01-02 09:30:00") == {"INC0010003"}
    assert selected("opened_at=2026-01-02 09:30:01") == set()


def test_text_operators_ignore_case_in_every_alphabet(stored):
    Task.update(requester="CORP\\Ödegaard", short_description="Zugang für Élodie").where(
        Task.number == "INC0010006").execute()
    for query in ("opened_byLIKEÖdegaard", "opened_byLIKEödegaard", "opened_byLIKEÖDEGAARD",
                  "opened_bySTARTSWITHcorp\\ö", "short_descriptionENDSWITHélodie", "short_descriptionLIKEFÜR É"):
        assert selected(query) == {"INC0010006"}, query
    assert "INC0010006" not in selected("opened_byNOT LIKEödegaard")
    assert selected("opened_byLIKEdegaard") == {"INC0010006"}, "the ASCII part alone still finds it"


@pytest.mark.parametrize("query, common", [
    ("opened_byLIKEösterberg", True), ("short_descriptionLIKEösterberg", True), ("opened_byLIKEös", False),
    ("opened_bySTARTSWITHcorp\\ös", True), ("opened_byENDSWITHösterberg", True), ("opened_byLIKEösterberg", False)])
def test_like_ignores_case_beyond_ascii_on_every_search_path(client, api_auth, monkeypatch, query, common):
    # A searched field's LIKE narrows through the ticket search first: by the trigram index for rare text, by
    # walking the tickets for common text (more candidates than SQLITE_MAX_CANDIDATES) and for a short one.
    factories.account("pam360", "reader")
    reader = basic_auth("pam360", factories.PASSWORD)
    for _ in range(2):
        client.post(WEBHOOK, data=json.dumps(factories.application_request(user="CORP\\ÖSTERBERG")),
                    content_type="application/json", headers=api_auth)
    if common:
        monkeypatch.setattr(search, "SQLITE_MAX_CANDIDATES", 1)
        monkeypatch.setattr(search, "POSTGRES_COMMON_MATCHES", 0)
    answer = client.get("/api/now/table/incident", headers=reader,
                        query_string={"sysparm_query": query, "sysparm_fields": "number"})
    assert answer.json["result"] == [{"number": "INC0010001"}, {"number": "INC0010002"}]


def test_the_last_second_there_is_bounds_a_time_as_any_other(stored):
    # 9999-12-31 23:59:59: a common "end of time" in filters; there is no second after it.
    every = set(stored)
    end = "9999-12-31 23:59:59"
    assert selected(f"opened_at<={end}") == selected(f"opened_at<{end}") == every
    assert selected(f"opened_at>{end}") == selected(f"opened_at={end}") == selected(f"opened_atIN{end}") == set()
    assert selected(f"opened_at!={end}") == every
    assert selected("opened_atBETWEENjavascript:gs.dateGenerate('2026-01-01','start')@"
                    "javascript:gs.dateGenerate('9999-12-31','end')") == expected(
        stored, lambda r: r["opened_at"] >= datetime(2026, 1, 1))


def test_a_reference_matches_by_sys_id_or_name(stored):
    jdoe = reference_sys_id("sys_user", "CORP\\jdoe")

    assert selected(f"opened_by={jdoe}") == selected("opened_by=CORP\\jdoe") == {"INC0010002", "INC0010005"}
    assert selected(f"opened_by.sys_id={jdoe}^ORassignment_group.name=Linux") == {
        "INC0010002", "INC0010003", "INC0010005"}


def test_an_unknown_field_selects_no_rows_never_all(stored):
    assert selected("priority=1") == set()
    assert selected("state=1^ORpriority=1") == set()
    assert selected("ORDERBYpriority") == set()
    assert selected("Number=INC0010002") == selected("number=INC0010002^ORShort_Description=x") == set()


def test_text_that_is_not_an_encoded_query_is_refused_with_where():
    from app.servicenow_api.query import QueryError

    with pytest.raises(QueryError, match="at character 1"):
        parse_query("=x")
    with pytest.raises(QueryError, match="ISEMPTY takes no value"):
        parse_query("opened_byISEMPTYx")
