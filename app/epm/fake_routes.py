"""The HTTP side of the fake EPM: its views, which FakeEpm inherits and which change its state under its lock."""
import math
import secrets
import time
from dataclasses import dataclass

import requests
from flask import Flask, jsonify, request

from app import contract

MAX_PAGE_SIZE = 200
CONTROL_PREFIX = "/_fake"
API, TOKEN = "api", "token"  # what fail_next applies to

_REQUIRED_FIELDS = {
    contract.KIND_APPLICATION: ("status", "decision", "decisionPerformedByUser", "duration", "itsmRequestId",
                                "decisionTime", "message", "systemId", "ticketId", "ticketUrl"),
    contract.KIND_ADMIN: ("requestId", "decision", "decisionPerformedByUser", "message", "systemId", "ticketId",
                          "ticketUrl"),
}
_REQUEST_ID_FIELD = {contract.KIND_APPLICATION: "itsmRequestId", contract.KIND_ADMIN: "requestId"}
_STATUS_FOR = {contract.DECISION_APPROVED: contract.EPM_STATUS_APPROVED, contract.DECISION_DENIED:
               contract.EPM_STATUS_DENIED}


class FakeEpmError(Exception):
    """The broker did not accept a webhook the fake fired (or no broker is configured)."""


@dataclass
class KnownRequest:
    """A request the fake's tenant knows: its created event and, once decided, the decision body."""

    kind: str
    event: dict
    decision: dict | None = None


@dataclass(frozen=True)
class DecisionCall:
    """One decision call the fake received; `applied` is False for a repeat or a refusal."""

    kind: str
    request_id: str
    body: dict
    idempotency_key: str | None
    applied: bool
    status: int


def _contract_problem(kind, body):
    """Why `body` breaks contract/epm.md §3, or None."""
    for name in _REQUIRED_FIELDS[kind]:
        if not isinstance(body.get(name), str) or not body[name].strip():
            return f"{name} must be a non-empty string"
    if body["decision"] not in contract.DECISIONS:
        return "decision must be Approved or Denied"
    if kind == contract.KIND_APPLICATION:
        if body["status"] != _STATUS_FOR[body["decision"]]:
            return f"status {body['status']} does not match decision {body['decision']}"
        if body["duration"] != contract.EPM_DURATION_ONCE and not body["duration"].isdigit():
            return "duration must be Once or a number of seconds"
        try:
            time.strptime(body["decisionTime"], contract.EPM_DECISION_TIME_FORMAT)
        except ValueError:
            return "decisionTime must be yyyy-MM-dd HH:mm:ss"
    elif body["decision"] == contract.DECISION_APPROVED and not str(body.get("duration") or "").strip():
        return "duration is required on an approval"
    elif body["decision"] == contract.DECISION_DENIED and "duration" in body:
        return "duration must be left out on a denial"
    return None


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
            app.add_url_rule(f"{path}/<request_id>", f"get_{kind}",
                             lambda request_id, kind=kind: self._get_view(kind, request_id))
        # Unauthenticated controls for the README demo; the fake only ever listens on loopback.
        app.add_url_rule(f"{CONTROL_PREFIX}/application-requests", "fire_application",
                         lambda: self._fire_view(self.fire_application_request), methods=["POST"])
        app.add_url_rule(f"{CONTROL_PREFIX}/admin-requests", "fire_admin",
                         lambda: self._fire_view(self.fire_admin_request), methods=["POST"])
        app.add_url_rule(f"{CONTROL_PREFIX}/state", "state", self._state_view)
        return app

    def _refuse(self, status, message, retry_after=None):
        response = jsonify(message=message)
        response.status_code = status
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

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
                       scope="urn:management:api")

    def _api_refusal(self):
        failure = self._injected_failure(API)
        if failure is not None:
            return failure
        return None if self._authorized() else self._refuse(401, "The access token is missing, expired or revoked")

    def _decision_view(self, kind):
        refusal = self._api_refusal()
        if refusal is not None:
            return refusal
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self._refuse(400, "The body must be a JSON object")
        problem = _contract_problem(kind, body)
        if problem:
            return self._refuse(400, problem)
        request_id, key = body[_REQUEST_ID_FIELD[kind]], request.headers.get(contract.IDEMPOTENCY_HEADER)
        with self._lock:
            status, known = self._apply(kind, request_id, body, key)
            self.calls.append(DecisionCall(kind, request_id, body, key, status == 201, 200 if status == 201
                                           else status))
            delay = self._delays.pop(0) if status == 201 and self._delays else None
            finalize = status == 201 and self.auto_finalize
            if finalize:
                self._pending_updates += 1  # counted now, so a waiter cannot miss it
        if status == 404:
            return self._refuse(404, f"Request {request_id} not found")
        if status == 409:
            return self._refuse(409, f"Request {request_id} has already been decided")
        if status == 400:
            return self._refuse(400, f"Request {request_id} is not an {kind} access request")
        if delay:
            self._stopping.wait(delay)
        response = jsonify({})
        if finalize:
            response.call_on_close(lambda: self._finalize_later(known, body))
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
        known.decision = body
        if key:
            self._idempotency_keys.add(key)
        return 201, known

    def _record(self, request_id, known):
        """One request as the reads return it (EPM's record shape is unpublished: made up here)."""
        event, decision = known.event, known.decision or {}
        info = event.get("requestInfo", event)
        return {"id": request_id, "ticketNumber": event["TicketNumber"], "tenantId": event["TenantId"],
                "createdDate": event["Timestamp"], "status": decision.get("decision", "Pending"),
                "user": info.get("user") or info.get("UserName"), "reason": info.get("reason") or info.get("Reason"),
                "decisionPerformedByUser": decision.get("decisionPerformedByUser"),
                "duration": decision.get("duration")}

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
            records = [self._record(rid, known) for rid, known in self.requests.items() if known.kind == kind]
        return jsonify(data=records[(number - 1) * size:number * size], pageCount=math.ceil(len(records) / size),
                       totalRecordCount=len(records))

    def _get_view(self, kind, request_id):
        refusal = self._api_refusal()
        if refusal is not None:
            return refusal
        with self._lock:
            known = self.requests.get(request_id)
            record = self._record(request_id, known) if known is not None and known.kind == kind else None
        return jsonify(record) if record else self._refuse(404, f"Request {request_id} not found")

    def _fire_view(self, fire):
        try:
            return jsonify(requestId=fire(**(request.get_json(silent=True) or {}))), 201
        except (FakeEpmError, ValueError, requests.RequestException) as error:
            return self._refuse(502, str(error))

    def _state_view(self):
        with self._lock:
            return jsonify(tokenRequests=self.token_requests, received=self.received_count,
                           applied=self.applied_count, requests=len(self.requests), webhooks=self.webhooks,
                           finalizeErrors=self.finalize_errors)
