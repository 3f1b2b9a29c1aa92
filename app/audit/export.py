"""The audit log written out as CSV or JSON, and an exported CSV row read back for re-checking its hash.

A spreadsheet runs a cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return
before one) as a formula, and user names reach the log from the sign-in form. Every CSV
cell that starts with one of those, or with a single quote, gets a single quote in front
(OWASP's CSV injection rule): the spreadsheet shows the text as it was, and the quote that
also guards a leading quote makes the change reversible. A reader re-checking the chain
from a CSV export reads its rows with `csv_row_fields`, which removes that one quote; the
JSON export carries every value as hashed and needs nothing undone. Both carry each entry's
key id beside its hash, so `jitbroker audit verify --file` re-checks an export with the keys.
"""
import csv
import io
import json

from app.audit.chain import HASHED_FIELDS, KEY_ID, Link
from app.audit.service import entry_document

COLUMNS = ("id", *HASHED_FIELDS, KEY_ID, "entry_hash")

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def neutralize_cell(value):
    """`value` as text a spreadsheet will not run: a leading formula character (or quote) gets a quote before it."""
    text = "" if value is None else str(value)
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def restore_cell(text):
    """The value `neutralize_cell` was given, as text."""
    return text[len(QUOTE):] if text.startswith(QUOTE) else text


def write_csv(entries, stream):
    """Entries (AuditEntry rows) as CSV with a header row, every cell neutralized."""
    writer = csv.writer(stream)
    writer.writerow(COLUMNS)
    for entry in entries:
        document = entry_document(entry)
        document["detail"] = json.dumps(document["detail"], sort_keys=True, ensure_ascii=False)
        writer.writerow([neutralize_cell(document[name]) for name in COLUMNS])


def write_json(entries, stream):
    """Entries as a JSON array of their documents, one per line, written as they are read."""
    # A large export never sits in memory whole.
    stream.write("[")
    for index, entry in enumerate(entries):
        stream.write(("," if index else "") + "\n" + json.dumps(entry_document(entry), ensure_ascii=False))
    stream.write("\n]\n")


def csv_row_fields(row):
    """The hashed fields of a CSV export's row (a `csv.DictReader` row) exactly as hashed, key id included."""
    fields = {name: restore_cell(row[name]) for name in HASHED_FIELDS}
    fields["detail"] = json.loads(fields["detail"])
    # CSV has no null: an entry without a source address (or made before keying) exports an empty cell.
    fields["source_address"] = fields["source_address"] or None
    key_id = restore_cell(row.get(KEY_ID) or "")
    if key_id:
        fields[KEY_ID] = key_id
    return fields


def read_links(stream):
    """The entries of an export (JSON array or CSV with a header) as `chain.Link`s, for `chain.check`.

    Raises ValueError when the text is neither."""
    text = stream.read()
    if text.lstrip().startswith("["):
        return [_json_link(document) for document in json.loads(text)]
    # newline="": a quoted cell keeps the line breaks it was written with, as the csv module asks.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = set(COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"the CSV lacks the columns {', '.join(sorted(missing))}")
    links = []
    for row in reader:
        # csv fills a short row's missing cells with None and keeps a long row's extra ones under None.
        if None in row or None in row.values():
            raise ValueError(f"the row ending on line {reader.line_num} has {'more' if None in row else 'fewer'} "
                             f"cells than the header (a cut or an edited export?)")
        try:
            links.append(Link(int(row["id"]), csv_row_fields(row), restore_cell(row["entry_hash"])))
        except (TypeError, json.JSONDecodeError) as error:
            raise ValueError(f"a row cannot be read: {error}") from None
    return links


def _json_link(document):
    try:
        fields = {name: document[name] for name in HASHED_FIELDS}
        if document.get(KEY_ID) is not None:
            fields[KEY_ID] = document[KEY_ID]
        return Link(int(document["id"]), fields, document["entry_hash"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"an entry lacks {error}") from None
