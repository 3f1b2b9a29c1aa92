"""The Batch API subset pysnc sends long queries through: `POST /api/now/v1/batch`.

pysnc moves a Table API GET whose parameters pass about 10,000 characters into a batch, as
ServiceNow's REST Batch API takes it: `{"batch_request_id", "rest_requests": [{"id", "method",
"url", "headers": [{"name", "value"}], "body"}]}`, bodies base64-encoded. Each GET of a Table or
Aggregate API URL is served as if sent alone, with the batch's own credentials and address;
anything else is answered in the batch with ServiceNow's 400 error, never run."""
import base64
import json
import re
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, request
from werkzeug.test import EnvironBuilder, run_wsgi_app

from app import contract
from app.auth.basic import require_roles
from app.errors import BadRequest
from app.servicenow_api.views import TABLE_API_ROLES

bp = Blueprint("batch", __name__)

SERVED_PATH = re.compile(r"^/api/now/(?:v[12]/)?(?:table|stats)/[^/]+(?:/[^/]+)?$")
MAX_REQUESTS = 100
# The inner request headers passed on; any other (Host, X-Forwarded-*, Cookie) is dropped.
INNER_HEADERS = {"accept", "content-type"}
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def _well_formed(rest_request):
    """Whether one of rest_requests has ServiceNow's shape: string id, method, url and body, headers as name/value."""
    if not isinstance(rest_request, dict) or not all(
            isinstance(rest_request.get(key), str) for key in ("id", "method", "url")):
        return False
    headers = rest_request.get("headers", [])
    return (isinstance(rest_request.get("body", ""), str) and isinstance(headers, list)
            and all(isinstance(h, dict) and all(isinstance(h.get(k, ""), str) for k in ("name", "value"))
                    for h in headers))


def _has_unpaired_surrogate(document):
    """Whether any text the batch reads holds an unpaired surrogate: legal as a JSON escape (`"\\udce9"`), yet no
    URL or header of an inner request can be encoded with one. `document` is well formed (`_well_formed`)."""
    texts = [str(document.get("batch_request_id", ""))]
    for rest_request in document["rest_requests"]:
        texts += [rest_request[key] for key in ("id", "method", "url")] + [rest_request.get("body", "")]
        texts += [header.get(key, "") for header in rest_request.get("headers", []) for key in ("name", "value")]
    return any(_UNPAIRED_SURROGATE.search(text) for text in texts)


def _failure(message, detail):
    return json.dumps({"error": {"message": message, "detail": detail}, "status": "failure"}).encode()


def _serve(rest_request):
    """One inner request's answer as (status, headers, body bytes)."""
    url = str(rest_request.get("url", ""))
    parts = urlsplit(url)
    method = str(rest_request.get("method", "GET")).upper()
    if method != "GET" or not SERVED_PATH.fullmatch(parts.path):
        return 400, [("Content-Type", "application/json")], _failure(
            "Request not served", "a batch here serves GET requests of the Table and Aggregate APIs")
    # Only what says how to answer: a Host or X-Forwarded-* header would set the links the answer carries.
    headers = [(h.get("name", ""), h.get("value", "")) for h in rest_request.get("headers", [])
               if h.get("name", "").lower() in INNER_HEADERS]
    # The inner request runs as the batch's caller, from the batch's address, at the batch's host.
    headers.append(("Authorization", request.headers.get("Authorization", "")))
    # The request line cap (app/http.py) holds for what came over the wire: the batch itself.
    environ = EnvironBuilder(path=parts.path, query_string=parts.query, method="GET", headers=headers,
                             base_url=request.host_url,
                             environ_base={"REMOTE_ADDR": request.remote_addr or "", contract.BATCHED_REQUEST: True},
                             ).get_environ()
    body, status, answer_headers = run_wsgi_app(current_app.wsgi_app, environ, buffered=True)
    payload = b"".join(body)
    return int(status.split(" ", 1)[0]), list(answer_headers.items()), payload


@bp.post("/v1/batch")
@bp.post("/batch")
@require_roles(*TABLE_API_ROLES, allow_session=False)
def batch():
    document = request.get_json(silent=True)
    if not isinstance(document, dict) or not isinstance(document.get("rest_requests"), list):
        raise BadRequest("Invalid batch", "a JSON object with batch_request_id and a rest_requests list")
    rest_requests = document["rest_requests"]
    if len(rest_requests) > MAX_REQUESTS:
        raise BadRequest("Invalid batch", f"at most {MAX_REQUESTS} requests in one batch")
    serviced = []
    if not all(_well_formed(rest_request) for rest_request in rest_requests) or not isinstance(
            document.get("batch_request_id", ""), (str, int)) or isinstance(document.get("batch_request_id"), bool):
        raise BadRequest("Invalid batch", "each of rest_requests is an object with string id, method and url, "
                                          "headers as name/value pairs, and a base64 body")
    if _has_unpaired_surrogate(document):
        raise BadRequest("Invalid batch", "text cannot contain unpaired surrogates (\\ud800-\\udfff escapes); "
                                          "send it as UTF-8")
    for rest_request in rest_requests:
        status, headers, payload = _serve(rest_request)
        serviced.append({
            "id": str(rest_request.get("id", "")), "status_code": status,
            "headers": [{"name": name, "value": value} for name, value in headers],
            "body": base64.b64encode(payload).decode(),
        })
    return jsonify(batch_request_id=str(document.get("batch_request_id", "")), serviced_requests=serviced,
                   unserviced_requests=[])
