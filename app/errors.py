"""Errors callers can act on, and the one place they become HTTP answers.

API paths answer ServiceNow's error shape,
`{"error": {"message": ..., "detail": ...}, "status": "failure"}`; browser paths
get an HTML page.
"""
import logging

from flask import jsonify, render_template, request
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import HTTPException

from app.db import UNAVAILABLE_ERRORS, is_unavailable

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """A failure with a message a person can act on, and the HTTP status it maps to."""

    status = 400

    def __init__(self, message, detail=None, extra=None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.extra = extra or {}

    def described(self):
        """The message with its detail, as a page's notice, the command line or a stored reason shows it."""
        return f"{self.message}: {self.detail}" if self.detail else self.message


class BadRequest(BrokerError):
    status = 400


class Unauthorized(BrokerError):
    status = 401


class Forbidden(BrokerError):
    status = 403


class NotFound(BrokerError):
    status = 404


class Conflict(BrokerError):
    status = 409


class ErrorMessageSchema(Schema):
    message = fields.String(required=True)
    detail = fields.String(allow_none=True)


class ErrorSchema(Schema):
    """The JSON API's error answer, with what the failure names when it names something."""

    error = fields.Nested(ErrorMessageSchema, required=True)
    status = fields.String(required=True, validate=validate.OneOf(["failure"]))
    wrong_fields = fields.Dict(attribute="fields", data_key="fields",
                               metadata={"description": "the fields that are wrong, with what is wrong with each"})
    field = fields.String(metadata={"description": "the one field that is wrong"})
    incoming_request = fields.String(metadata={"pattern": "^[0-9a-f]{32}$",
                                               "description": "the stored record of a refused delivery"})
    retry_after = fields.Integer(validate=validate.Range(min=1))
    ticket = fields.String(metadata={"description": "the ticket a refused replay concerns"})
    ticket_url = fields.String(metadata={"description": "the ticket page, where a decision this door may not record "
                                                        "can be made (an Admin Access approval needing step-up)"})


_ERROR = ErrorSchema()


def wants_json():
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status, message, detail=None, extra=None):
    if wants_json():
        response = jsonify(_ERROR.dump({"error": {"message": message, "detail": detail}, "status": "failure",
                                        **(extra or {})}))
    else:
        response = render_template("error.html", status=status, message=message, detail=detail)
    return response, status


def init_app(app):
    @app.errorhandler(BrokerError)
    def _broker_error(error):
        response, status = error_response(error.status, error.message, error.detail, error.extra)
        if status == 401 and request.path.startswith("/api/"):
            return response, status, {"WWW-Authenticate": 'Basic realm="JIT Broker"'}
        if status == 503:
            return response, status, {"Retry-After": "5"}
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(error):
        response, status = error_response(error.code, error.description or error.name)
        # Keep the headers werkzeug sends with the status, such as a 405's Allow.
        headers = [(name, value) for name, value in error.get_headers() if name.lower() != "content-type"]
        return response, status, headers

    for error_class in UNAVAILABLE_ERRORS:
        @app.errorhandler(error_class)
        def _database_unavailable(error):
            if not is_unavailable(error):
                # About what was asked, not the database's state: sending it again fails again.
                log.error("database refused the request: %s", error, exc_info=error)
                return error_response(500, "The database refused this request", "it fails the same way if sent again")
            # EPM retries a delivery that got a 503; a 500 might be final for it.
            log.warning("database unavailable: %s", error)
            response, status = error_response(503, "The database is unavailable; try again shortly")
            return response, status, {"Retry-After": "5"}
