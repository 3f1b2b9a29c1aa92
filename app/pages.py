"""Keyset pages over the broker's logs (deliveries, calls to EPM, its own log), newest first by id.

A page below an entry (`before`, the entry's sys_id) or above it (`after`) starts with one seek
on the primary key, so the ten-thousandth page costs what the first does, where an OFFSET reads
and drops every row above the page. The id is the order the rows were written in, which is their
time order; it costs no index beyond the primary key on the tables every delivery writes to.
(tests/ops/test_ops_query_plans.py checks each page's plan on both databases.)
"""
from dataclasses import dataclass

from marshmallow import Schema, fields, validate

from app.fields import MAX_OFFSET, SYS_ID

PAGE_SIZE = 50
MAX_LIMIT = 500


def _entry_field(description):
    return fields.String(validate=validate.Regexp(SYS_ID["pattern"], error="Not an entry's sys_id."),
                         metadata={"description": description, **SYS_ID})


class KeysetPageSchema(Schema):
    """A page of a log: its size, and where it starts: `before` an entry, or `after` one (the page just
    above it; with both, the entries between them). `offset` still counts from there, as it did before
    the keys existed, but reads every row it skips."""

    limit = fields.Integer(load_default=PAGE_SIZE, validate=validate.Range(1, MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET),
                            metadata={"description": "rows to skip; `before` reaches a deep page at once"})
    before = _entry_field("the entries older than this one (the previous page's last: its Link rel=\"next\")")
    after = _entry_field("the entries newer than this one (a page's first, for the page above it)")


@dataclass(frozen=True)
class Page:
    """Rows newest first, and the sys_ids the links to the newer and the older page start from (None: no page)."""

    rows: list
    newer: str | None
    older: str | None


def keyset_page(query, model, page):
    """The page of `query` (over `model`, filtered) that `page` (a loaded KeysetPageSchema) asks for."""
    limit = page["limit"]
    if "before" in page:
        query = query.where(model.id < _id_of(model, page["before"]))
    if "after" in page:
        rows = list(query.where(model.id > _id_of(model, page["after"])).order_by(model.id.asc())
                    .limit(limit + 1).offset(page["offset"]))
        more, rows = len(rows) > limit, rows[:limit][::-1]
        return Page(rows, rows[0].sys_id if more and rows else None, rows[-1].sys_id if rows else page["after"])
    rows = list(query.order_by(model.id.desc()).limit(limit + 1).offset(page["offset"]))
    more, rows = len(rows) > limit, rows[:limit]
    is_first = "before" not in page and not page["offset"]
    newer = None if is_first else (rows[0].sys_id if rows else page.get("before"))
    return Page(rows, newer, rows[-1].sys_id if more else None)


def _id_of(model, sys_id):
    # A scalar subquery: the databases read it once, then seek the primary key from it.
    # An unknown sys_id gives NULL, which no id is below or above: an empty page.
    entry = model.alias()
    return entry.select(entry.id).where(entry.sys_id == sys_id)
