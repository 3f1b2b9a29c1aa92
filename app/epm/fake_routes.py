"""The HTTP side of the fake EPM: its views, which FakeEpm inherits and which change its state under its lock.

Answers follow contract/epm.md section 5: nested records (fake_records), a one-element array for the v2
Admin Access single read (5.2), and, when strict, ASP.NET's ValidationProblemDetails for a refused body."""
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
from flask import Flask, Response, jsonify, request

from app import contract
from app.epm import fake_records

MAX_PAGE_SIZE = 200
CONTROL_PREFIX = "/_fake"
API, TOKEN = "api", "token"  # what fail_next applies to
V2_APPLICATION_PATH = "/management-api/v2/AuthorizationRequest"
V2_ADMIN_PATH = "/management-api/v2/AdminAccessRequest"

_REQUIRED_FIELDS = {
    contract.KIND_APPLICATION: ("status", "decision", "decisionPerformedByUser", "duration", "itsmRequestId",
                                "decisionTime", "message", "systemId", "ticketId", "ticketUrl"),
    contract.KIND_ADMIN: ("requestId", "decision", "decisionPerformedByUser", "message", "systemId", "ticketId",
                          "ticketUrl"),
}
# ASP.NET binds JSON keys case-insensitively (5.9): PascalCase bodies ([BTCLI]) name the same fields.
_FIELD_NAMES = {kind: {name.lower(): name for name in (*fields, "duration")} for kind, fields in
                _REQUIRED_FIELDS.items()}
_REQUEST_ID_FIELD = {contract.KIND_APPLICATION: "itsmRequestId", contract.KIND_ADMIN: "requestId"}
STATUS_FOR = {contract.DECISION_APPROVED: contract.EPM_STATUS_APPROVED, contract.DECISION_DENIED:
              contract.EPM_STATUS_DENIED}
VALIDATION_TITLE = "One or more validation errors occurred."
_VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
_NOT_FOUND_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.5"
CONFLICT_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.10"


class FakeEpmError(Exception):
    """The broker did not accept a webhook the fake fired (or no broker is configured)."""


@dataclass(frozen=True)
class DecisionCall:
    """One decision call the fake received; `applied` is False for a repeat or a refusal."""

    kind: str
    request_id: str
    body: dict
    idempotency_key: str | None
    applied: bool
    status: int


def canonical_body(kind, body):
    """`body` with the decision fields under their camelCase names, whatever case they arrived in."""
    names = _FIELD_NAMES[kind]
    return {names.get(key.lower(), key): value for key, value in body.items()}


def _contract_problem(kind, body):
    """(field, why) when `body` breaks contract/epm.md §3 and §5.9, or None."""
    for name in _REQUIRED_FIELDS[kind]:
        if body.get(name) is None:
            return name, f"The {name} field is required."
        if not isinstance(body[name], str) or not body[name].strip():
            return name, f"{name} must be a non-empty string"
    if body["decision"] not in contract.DECISIONS:
        return "decision", "decision must be Approved or Denied"
    if kind == contract.KIND_APPLICATION:
        if body["status"] != STATUS_FOR[body["decision"]]:
            return "status", f"status {body['status']} does not match decision {body['decision']}"
        if body["duration"] != contract.EPM_DURATION_ONCE and not body["duration"].isdigit():
            return "duration", "duration must be Once or a number of seconds"
        try:
            time.strptime(body["decisionTime"], contract.EPM_DECISION_TIME_FORMAT)
        except ValueError:
            return "decisionTime", "decisionTime must be yyyy-MM-dd HH:mm:ss"
    elif body["decision"] == contract.DECISION_APPROVED and not str(body.get("duration") or "").strip():
        return "duration", "duration is required on an approval"
    elif body["decision"] == contract.DECISION_DENIED and "duration" in body:
        return "duration", "duration must be left out on a denial"
    return None


def _trace_id():
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"


def conflict_problem():
    """ASP.NET Core's answer to a bare Conflict() (ProblemDetails): EPM documents no 409 body, so the fake's
    says nothing of why, and the broker must read EPM's record to tell what happened."""
    response = jsonify({"type": CONFLICT_TYPE, "title": "Conflict", "status": 409, "traceId": _trace_id()})
    response.status_code = 409
    response.mimetype = "application/problem+json"
    return response


def validation_problem(field, message):
    """ASP.NET Core's 400 answer to a body its model binding refused (ValidationProblemDetails)."""
    response = jsonify({"type": _VALIDATION_TYPE, "title": VALIDATION_TITLE, "status": 400,
                        "errors": {field: [message]}, "traceId": _trace_id()})
    response.status_code = 400
    response.mimetype = "application/problem+json"
    return response


class FakeEpmRoutes:
    """The views of FakeEpm; see there for the state they use."""

    def _build_app(self, token_path, application_decision_path, admin_decision_path):
        app = Flask(__name__)
        app.add_url_rule(token_path, "token", self._token_view, methods=["POST"])
        for kind, path in ((contract.KIND_APPLICATION, application_decision_path),
                           (contract.KIND_ADMIN, admin_decision_path)):
            app.add_url_rule(path, f"decide_{kind}", lambda kind=kind: self._decision_view(kind), methods=["POST"])
        for kind, path in ((contract.KIND_APPLICATION, contract.EPM_APPLICATION_LIST_PATH),
                           (contract.KIND_ADMIN, contract.EPM_ADMIN_LIST_PATH)):
            app.add_url_rule(path, f"list_{kind}", lambda kind=kind: self._list_view(kind))
        for name, kind, path, as_array in (
                ("v3_application", contract.KIND_APPLICATION, contract.EPM_APPLICATION_LIST_PATH, lambda: False),
                ("v2_application", contract.KIND_APPLICATION, V2_APPLICATION_PATH, lambda: False),
                ("v3_admin", contract.KIND_ADMIN, contract.EPM_ADMIN_LIST_PATH, lambda: self.admin_single_as_array),
                ("v2_admin", contract.KIND_ADMIN, V2_ADMIN_PATH, lambda: True)):  # [BT-REF-AAR]: an array
            app.add_url_rule(f"{path}/<request_id>", f"get_{name}", methods=["GET"],
                             view_func=lambda request_id, kind=kind, as_array=as_array:
                             self._get_view(kind, request_id, as_array()))
        # Unauthenticated controls for the README demo; the fake only ever listens on loopback.
        app.add_url_rule(f"{CONTROL_PREFIX}/application-requests", "fire_application",
                         lambda: self._fire_view(self.fire_application_request), methods=["POST"])
        app.add_url_rule(f"{CONTROL_PREFIX}/admin-requests", "fire_admin",
                         lambda: self._fire_view(self.fire_admin_request), methods=["POST"])
        app.add_url_rule(f"{CONTROL_PREFIX}/requests/<request_id>/<action>", "console", self._console_view,
                         methods=["POST"])
        app.add_url_rule(f"{CONTROL_PREFIX}/state", "state", self._state_view)
        return app

    def _refuse(self, status, message, retry_after=None):
        response = jsonify(message=message)
        response.status_code = status
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def _invalid(self, field, message):
        """A refused decision body: ValidationProblemDetails when strict, {"message": ...} otherwise."""
        return validation_problem(field, message) if self.strict else self._refuse(400, message)

    def _not_found(self, request_id):
        if self.strict:
            response = jsonify(type=_NOT_FOUND_TYPE, title="Not Found", status=404)
            response.status_code, response.mimetype = 404, "application/problem+json"
            return response
        return self._refuse(404, f"Request {request_id} not found")

    def _injected_failure(self, endpoint):
        with self._lock:
            for index, failure in enumerate(self._failures):
                if failure[0] == endpoint:
                    del self._failures[index]
                    return self._refuse(failure[1], f"Injected failure (HTTP {failure[1]})", failure[2])
        return None

    def _authorized(self):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        with self._lock:
            expires = self._tokens.get(token) if scheme.lower() == "bearer" else None
        return expires is not None and time.monotonic() < expires

    def _token_view(self):
        with self._lock:
            self.token_requests += 1
        failure = self._injected_failure(TOKEN)
        if failure is not None:
            return failure
        if request.form.get("grant_type") != "client_credentials":
            return jsonify(error="unsupported_grant_type"), 400
        with self._lock:
            if (request.form.get("client_id"), request.form.get("client_secret")) != (self.client_id,
                                                                                      self.client_secret):
                return jsonify(error="invalid_client"), 401
            token = secrets.token_urlsafe(24)
            self._tokens[token] = time.monotonic() + self.token_lifetime
        return jsonify(access_token=token, token_type="Bearer", expires_in=self.token_lifetime,
                       scope=contract.EPM_TOKEN_SCOPE)

    def _api_refusal(self):
        failure = self._injected_failure(API)
        if failure is not None:
            return failure
        return None if self._authorized() else self._refuse(401, "The access token is missing, expired or revoked")

    def _decision_view(self, kind):
        refusal = self._api_refusal()
        if refusal is not None:
            return refusal
        received = request.get_json(silent=True)
        if not isinstance(received, dict):
            return self._invalid("$", "The body must be a JSON object")
        body = canonical_body(kind, received)
        problem = _contract_problem(kind, body)
        if problem:
            return self._invalid(*problem)
        request_id, key = body[_REQUEST_ID_FIELD[kind]], request.headers.get(contract.IDEMPOTENCY_HEADER)
        with self._lock:
            status, known = self._apply(kind, request_id, body, key)
            self.calls.append(DecisionCall(kind, request_id, received, key, status == 201, 200 if status == 201
                                           else status))
            delay = self._delays.pop(0) if status == 201 and self._delays else None
            finalize = status == 201 and self.auto_finalize
            if finalize:
                self._pending_updates += 1  # counted now, so a waiter cannot miss it
        if status == 404:
            return self._invalid(_REQUEST_ID_FIELD[kind], f"Request {request_id} not found")
        if status == 409:
            return conflict_problem()
        if status == 400:
            return self._invalid(_REQUEST_ID_FIELD[kind], f"Request {request_id} is not an {kind} access request")
        if delay:
            self._stopping.wait(delay)
        # The reference documents a 200 with no body (section 5 examples); the lenient fake answers {}.
        response = Response(status=200) if self.strict else jsonify({})
        if finalize:
            response.call_on_close(lambda: self._finalize_later(known))
        return response

    def _apply(self, kind, request_id, body, key):
        """(outcome, request): 201 applied now, 200 a repeated key, else the refusal's status."""
        if key and key in self._idempotency_keys:
            return 200, None
        known = self.requests.get(request_id)
        if known is None:
            if self.strict:
                return 404, None
            self.add_request(kind, request_id)  # lenient: as if EPM had announced it
            known = self.requests[request_id]
        if known.kind != kind:
            return 400, known
        if known.decision is not None:
            return 409, known
        known.settle(body, datetime.now(timezone.utc))
        if key:
            self._idempotency_keys.add(key)
        return 201, known

    def _record(self, known):
        return fake_records.record(known, strict=self.strict, status_text=self.status_text)

    def _list_view(self, kind):
        refusal = self._api_refusal()
        if refusal is not None:
            return refusal
        try:
            size = int(request.args.get("Pagination.PageSize", MAX_PAGE_SIZE))
            number = int(request.args.get("Pagination.PageNumber", 1))
        except ValueError:
            return self._refuse(400, "Pagination.PageSize and Pagination.PageNumber must be numbers")
        if not 1 <= size <= MAX_PAGE_SIZE or number < 1:
            return self._refuse(400, f"Pagination.PageSize must be 1–{MAX_PAGE_SIZE}, PageNumber at least 1")
        with self._lock:
            records = [self._record(known) for known in self.requests.values() if known.kind == kind]
        return jsonify(fake_records.page(records, number=number, size=size, strict=self.strict))

    def _get_view(self, kind, request_id, as_array):
        refusal = self._api_refusal()
        if refusal is not None:
            return refusal
        with self._lock:
            known = self.requests.get(request_id)
            record = self._record(known) if known is not None and known.kind == kind else None
        if record is None:
            return self._not_found(request_id)
        return jsonify([record] if as_array else record)

    def _fire_view(self, fire):
        try:
            return jsonify(requestId=fire(**(request.get_json(silent=True) or {}))), 201
        except (FakeEpmError, ValueError, requests.RequestException) as error:
            return self._refuse(502, str(error))

    def _console_view(self, request_id, action):
        """POST /_fake/requests/<id>/{decide,revoke,end-session,send-missed}: EPM's console, for the demo.
        The JSON body holds the method's keyword arguments (decide: decision, by, duration, message, notify)."""
        actions = {"decide": self.decide, "revoke": self.revoke, "end-session": self.end_session,
                   "send-missed": self.send_missed}
        if action not in actions:
            return self._refuse(404, f"No console action {action!r}; try one of {', '.join(actions)}")
        options = request.get_json(silent=True) or {}
        if not isinstance(options, dict):
            return self._refuse(400, "The body must be a JSON object of options")
        try:
            events = actions[action](request_id, **options)
        except KeyError:
            return self._refuse(404, f"Request {request_id} not found")
        except (TypeError, ValueError) as error:
            return self._refuse(400, str(error))
        except (FakeEpmError, requests.RequestException) as error:
            return self._refuse(502, str(error))
        return jsonify(requestId=request_id, events=events if isinstance(events, list) else [events])

    def _state_view(self):
        with self._lock:
            return jsonify(tokenRequests=self.token_requests, received=self.received_count,
                           applied=self.applied_count, requests=len(self.requests), webhooks=self.webhooks,
                           finalizeErrors=self.finalize_errors)
