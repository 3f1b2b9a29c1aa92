"""`jitbroker audit export`: entries in a date range as CSV or JSON, with what is needed to re-check the chain."""
import csv
import io
import json
from datetime import datetime

import pytest

from app.audit import chain, export, keys
from app.audit import service as audit


@pytest.fixture
def three_days(app, monkeypatch):
    """One entry on each of 1, 2 and 3 March 2026 (UTC)."""
    entries = []
    for day, actor in ((1, "ann"), (2, "bob"), (3, "cy")):
        monkeypatch.setattr(audit, "utcnow", lambda day=day: datetime(2026, 3, day, 12, 30, 5, 120000))
        entries.append(audit.record("sign_in", actor, "account", actor, {"note": f"day {day}, «ünïcode»"},
                                    source_address="192.0.2.7"))
    return entries


def _json_export(runner, *options):
    result = runner.invoke(args=["audit", "export", "--format", "json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_export_holds_every_entry_oldest_first_with_its_hashes(runner, three_days):
    exported = _json_export(runner)

    assert [entry["actor"] for entry in exported] == ["ann", "bob", "cy"]
    first = exported[0]
    assert first["created_at"] == "2026-03-01T12:30:05.120000Z"
    assert (first["action"], first["object_type"], first["object_id"]) == ("sign_in", "account", "ann")
    assert first["source_address"] == "192.0.2.7"
    assert first["detail"] == {"note": "day 1, «ünïcode»"}
    assert first["previous_hash"] == audit.GENESIS_HASH
    assert exported[1]["previous_hash"] == first["entry_hash"]


def test_an_export_can_be_rechecked_without_the_database(runner, three_days):
    exported = _json_export(runner)
    for entry in exported:
        fields = {name: entry[name] for name in (*audit.HASHED_FIELDS, "key_id")}
        assert chain.seal(fields, keys.current()) == entry["entry_hash"]
    assert {entry["key_id"] for entry in exported} == {keys.current().current_id}


def test_until_takes_in_the_whole_day(runner, three_days):
    assert [e["actor"] for e in _json_export(runner, "--since", "2026-03-02", "--until", "2026-03-02")] == ["bob"]
    assert [e["actor"] for e in _json_export(runner, "--until", "2026-03-02")] == ["ann", "bob"]
    assert [e["actor"] for e in _json_export(runner, "--since", "2026-03-02")] == ["bob", "cy"]


def test_a_time_bound_is_read_as_utc(runner, three_days):
    # 13:00 in UTC+02:00 is 11:00 UTC, before the 12:30 entry on 2 March.
    assert [e["actor"] for e in _json_export(runner, "--since", "2026-03-02T13:00:00+02:00")] == ["bob", "cy"]
    assert [e["actor"] for e in _json_export(runner, "--since", "2026-03-02T12:30:06Z")] == ["cy"]


def test_csv_export_has_a_header_and_one_row_per_entry(runner, three_days):
    result = runner.invoke(args=["audit", "export", "--format", "csv", "--since", "2026-03-02"])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert [row["actor"] for row in rows] == ["bob", "cy"]
    assert list(rows[0]) == ["id", *audit.HASHED_FIELDS, "key_id", "entry_hash"]
    assert json.loads(rows[0]["detail"]) == {"note": "day 2, «ünïcode»"}
    assert rows[0]["entry_hash"] == three_days[1].entry_hash


def test_an_empty_range_exports_no_entries(runner, three_days):
    assert _json_export(runner, "--since", "2027-01-01") == []
    result = runner.invoke(args=["audit", "export", "--format", "csv", "--since", "2027-01-01"])
    assert result.output.strip() == ",".join(["id", *audit.HASHED_FIELDS, "key_id", "entry_hash"])


def test_a_date_that_is_not_one_is_refused(runner, app):
    result = runner.invoke(args=["audit", "export", "--since", "last tuesday"])

    assert result.exit_code == 2
    assert "is not a date (YYYY-MM-DD) or an ISO 8601 time" in result.output


FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "'=quoted"]


@pytest.mark.parametrize("value", FORMULAS)
def test_a_csv_cell_a_spreadsheet_would_run_starts_with_a_quote(value):
    assert export.neutralize_cell(value) == "'" + value
    assert export.restore_cell(export.neutralize_cell(value)) == value


@pytest.mark.parametrize("value", ["ann", "", "192.0.2.7", '{"a": "=1"}', "a=b", None])
def test_a_harmless_csv_cell_is_written_as_it_is(value):
    assert export.neutralize_cell(value) == ("" if value is None else value)


def test_csv_export_neutralizes_formulas_in_every_cell(runner, app):
    audit.record("sign_in_failed", '=HYPERLINK("http://evil","x")', "account", "@evil", {"reason": "x"},
                 source_address="-1")
    result = runner.invoke(args=["audit", "export", "--format", "csv"])

    row = list(csv.DictReader(io.StringIO(result.output)))[0]
    assert row["actor"] == '\'=HYPERLINK("http://evil","x")'
    assert (row["object_id"], row["source_address"]) == ("'@evil", "'-1")


def test_a_csv_export_can_be_rechecked_without_the_database(runner, three_days):
    audit.record("sign_in_failed", "=cmd|' /C calc'!A0", "account", "+x", {"reason": "unknown user name"})
    audit.record("sign_out", "'quoted", "account", "q")
    result = runner.invoke(args=["audit", "export", "--format", "csv"])

    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert len(rows) == 5
    for row in rows:
        fields = export.csv_row_fields(row)
        assert chain.seal(fields, keys.current()) == row["entry_hash"]
    assert export.csv_row_fields(rows[3])["actor"] == "=cmd|' /C calc'!A0"
    assert export.csv_row_fields(rows[4])["actor"] == "'quoted"


@pytest.mark.parametrize("output_format", ["json", "csv"])
def test_audit_verify_checks_an_export_file_with_the_keys(runner, three_days, tmp_path, output_format):
    audit.record("sign_in_failed", "=cmd|' /C calc'!A0", "account", "+x", {"reason": "unknown user name"})
    path = tmp_path / f"audit.{output_format}"
    path.write_text(runner.invoke(args=["audit", "export", "--format", output_format]).output, encoding="utf-8")

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code == 0, result.output
    assert "Audit chain intact: 4 entries" in result.output


@pytest.mark.parametrize("output_format", ["json", "csv"])
def test_an_export_file_edited_without_the_key_fails_verify(runner, three_days, tmp_path, output_format):
    exported = runner.invoke(args=["audit", "export", "--format", output_format]).output
    path = tmp_path / f"audit.{output_format}"
    path.write_text(exported.replace("day 2", "day 9"), encoding="utf-8")

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code != 0
    assert f"Audit chain broken at entry {three_days[1].id}" in result.output
    assert "signature" in result.output


def test_a_range_exported_alone_verifies_from_its_first_link(runner, three_days, tmp_path):
    path = tmp_path / "audit.json"
    path.write_text(runner.invoke(args=["audit", "export", "--format", "json", "--since", "2026-03-02"]).output)

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code == 0 and "Audit chain intact: 2 entries" in result.output


def test_a_file_that_is_no_export_is_refused_clearly(runner, app, tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("name,age\nann,3\n")

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code != 0
    assert "is not an audit export: the CSV lacks the columns" in result.output


@pytest.mark.parametrize("edit, told", [
    (lambda lines: lines[:-1] + [",".join(lines[-1].split(",")[:3])], "fewer cells than the header"),
    (lambda lines: lines[:-1] + [lines[-1] + ",extra"], "more cells than the header"),
], ids=["cut short", "a cell added"])
def test_a_csv_export_whose_last_row_was_cut_or_grown_is_refused_clearly(runner, three_days, tmp_path, edit, told):
    lines = runner.invoke(args=["audit", "export", "--format", "csv"]).output.splitlines()
    path = tmp_path / "audit.csv"
    path.write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception  # no traceback
    assert "is not an audit export: the row ending on line 4 has " + told in result.output


def test_a_csv_export_with_line_breaks_in_a_cell_verifies(runner, app, tmp_path):
    audit.record("sign_in_failed", "two\r\nlines", "account", "x", {"typed": "a\nb"})
    path = tmp_path / "audit.csv"
    # The bytes as written: the runner's `output` would turn the cell's CR LF into LF.
    path.write_bytes(runner.invoke(args=["audit", "export", "--format", "csv"]).stdout_bytes)

    result = runner.invoke(args=["audit", "verify", "--file", str(path)])

    assert result.exit_code == 0, result.output
