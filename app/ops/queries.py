"""The filters of the operations lists (one marshmallow schema each), shared by the pages and their JSON twins;
each list is read in keyset pages, newest first (app/pages.py)."""
import logging
from datetime import datetime, time, timedelta

from marshmallow import fields, validate
from peewee import JOIN

from app import contract
from app.audit.service import AuditFilterSchema
from app.errors import NotFound
from app.fields import MAX_ROW_ID, later_by, load_query
from app.logs.models import AppLog, OutboundCall
from app.logs.outbound import PURPOSES
from app.models import Decision, IncomingRequest, Task
from app.pages import PAGE_SIZE, KeysetPageSchema, keyset_page

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CALL_OUTCOMES = ("ok", "failed")


class _PageSchema(KeysetPageSchema):
    date = fields.Date(format="%Y-%m-%d")


class IncomingFilterSchema(_PageSchema):
    status = fields.String(validate=validate.OneOf(contract.INCOMING_STATUSES))
    event_type = fields.String(validate=validate.Length(max=64))
    request_id = fields.String(validate=validate.Length(max=100))


class OutboundFilterSchema(_PageSchema):
    what = fields.String(validate=validate.OneOf(PURPOSES))
    outcome = fields.String(validate=validate.OneOf(CALL_OUTCOMES))
    ticket = fields.String(validate=validate.Length(max=16))


class AppLogFilterSchema(_PageSchema):
    level = fields.String(validate=validate.OneOf(LOG_LEVELS))
    logger = fields.String(validate=validate.Length(max=255))
    request_id = fields.String(validate=validate.Length(max=128))
    ticket = fields.String(validate=validate.Length(max=32))
    q = fields.String(validate=validate.Length(max=200))


class AuditQuerySchema(AuditFilterSchema):
    """The audit entries' filters and page for the JSON API (oldest first; `after` an entry's id
    seeks the primary key, `offset` reads every entry it skips)."""

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10 ** 12))
    after = fields.Integer(validate=validate.Range(0, MAX_ROW_ID), metadata={
        "description": "the entries after the one with this id (the previous page's last: its Link rel=\"next\")"})


def load_filters(schema, args):
    """Checked filters from a query string; BadRequest naming the fields that are wrong."""
    return load_query(schema(), args, "Invalid filter", blank_is_missing=True)


def _day(column, day):
    start = datetime.combine(day, time.min)
    end = later_by(start, timedelta(days=1))
    if end is None:  # 9999-12-31: there is no day after it
        return column >= start
    return (column >= start) & (column < end)


def incoming_requests(filters):
    query = IncomingRequest.select(IncomingRequest, Task).join(Task, on=(IncomingRequest.task == Task.id),
                                                               join_type=JOIN.LEFT_OUTER)
    if "status" in filters:
        query = query.where(IncomingRequest.status == filters["status"])
    if "event_type" in filters:
        query = query.where(IncomingRequest.event_type == filters["event_type"])
    if "request_id" in filters:
        query = query.where(IncomingRequest.request_id == filters["request_id"].strip())
    if "date" in filters:
        query = query.where(_day(IncomingRequest.received_at, filters["date"]))
    return keyset_page(query, IncomingRequest, filters)


def outbound_calls(filters):
    query = (OutboundCall.select(OutboundCall, Decision, Task)
             .join(Decision, on=(OutboundCall.decision == Decision.id), join_type=JOIN.LEFT_OUTER)
             .join(Task, on=(Decision.task == Task.id), join_type=JOIN.LEFT_OUTER))
    if "what" in filters:
        query = query.where(OutboundCall.what == filters["what"])
    if filters.get("outcome") == "ok":
        query = query.where(OutboundCall.status.between(200, 299) & OutboundCall.error.is_null())
    elif filters.get("outcome") == "failed":
        query = query.where(OutboundCall.status.is_null() | ~OutboundCall.status.between(200, 299)
                            | OutboundCall.error.is_null(False))
    if "ticket" in filters:
        query = query.where(Task.number == filters["ticket"].strip().upper())
    if "date" in filters:
        query = query.where(_day(OutboundCall.created_at, filters["date"]))
    return keyset_page(query, OutboundCall, filters)


def find_outbound_call(sys_id):
    call = OutboundCall.get_or_none(OutboundCall.sys_id == str(sys_id).strip().lower())
    if call is None:
        raise NotFound(f"No outbound call {sys_id}")
    return call


def app_log(filters):
    query = AppLog.select()
    if "level" in filters:
        query = query.where(AppLog.level_number >= logging.getLevelName(filters["level"]))
    if "logger" in filters:
        name = filters["logger"].strip()
        query = query.where((AppLog.logger == name) | AppLog.logger.startswith(name + "."))
    if "request_id" in filters:
        query = query.where(AppLog.request_id == filters["request_id"].strip())
    if "ticket" in filters:
        query = query.where(AppLog.ticket == filters["ticket"].strip().upper())
    if "q" in filters:
        query = query.where(AppLog.message.contains(filters["q"]))
    if "date" in filters:
        query = query.where(_day(AppLog.created_at, filters["date"]))
    return keyset_page(query, AppLog, filters)


def filter_args(filters):
    """The filters as query-string arguments for links (without where the page starts)."""
    return {key: (value.isoformat() if hasattr(value, "isoformat") else value)
            for key, value in filters.items() if key not in ("offset", "before", "after")
            and not (key == "limit" and value == PAGE_SIZE)}
