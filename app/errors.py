"""Errors callers can act on, and the one place they become HTTP answers.

API paths answer ServiceNow's error shape,
`{"error": {"message": ..., "detail": ...}, "status": "failure"}`; browser paths
get an HTML page.
"""
import logging

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from app.db import UNAVAILABLE_ERRORS

log = logging.getLogger(__name__)


class BrokerError(Exception):
    """A failure with a message a person can act on, and the HTTP status it maps to."""

    status = 400

    def __init__(self, message, detail=None, extra=None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.extra = extra or {}


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


class UnsupportedMediaType(BrokerError):
    status = 415


class ServiceUnavailable(BrokerError):
    status = 503


def wants_json():
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_response(status, message, detail=None, extra=None):
    if wants_json():
        body = {"error": {"message": message, "detail": detail}, "status": "failure"}
        body.update(extra or {})
        response = jsonify(body)
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
            # EPM retries a delivery that got a 503; a 500 might be final for it.
            log.warning("database unavailable: %s", error)
            response, status = error_response(503, "The database is unavailable; try again shortly")
            return response, status, {"Retry-After": "5"}
