"""What every request passes: the trusted proxies, the request line and body size limits, the parameter check,
and the headers every answer carries.

Requests are held to what the JSON API's description can mean, with a 400: a query
parameter given twice on the JSON API, and a NUL character in a query or path parameter
or a form field anywhere (PostgreSQL refuses NUL in any text, even to compare, so pages
and API alike would answer 500).

A body over `[intake] max_body_bytes` gets a 413 on every route, whether its size was
announced (Content-Length) or not (Transfer-Encoding: chunked). The webhook applies the
limit itself, after checking who is sending, so that it can store the refusal.
"""
import io


from flask import current_app, g, request
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app import contract
from app.auth import oidc_client
from app.errors import BadRequest, BrokerError
from app.fields import MAX_ROW_ID

# Only over HTTPS (directly, or via a trusted proxy): over plain HTTP it would be ignored.
HSTS = "max-age=31536000; includeSubDomains"

# No inline script or style anywhere, so the policy can forbid both: an EPM value
# that slipped past escaping still could not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'; object-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

# Every dynamic answer, not only those for a signed-in session or Basic credentials:
# error pages and redirects for a signed-in account count too, and nothing the broker
# computes is worth keeping in a shared or browser cache. Static files are the same for
# everyone and keep their caching.
NO_STORE = "no-store"


# gunicorn's own request line limit is off (gunicorn.conf.py: it clamps any value to 8,190 bytes
# and answers beyond it with an HTML page); this is the limit, answered in the API's JSON shape.
# pysnc sends Table API queries of ~10,000 characters as GETs before it turns to the Batch API.
MAX_REQUEST_LINE = 32 * 1024


class BodyTooLarge(BrokerError):
    status = 413


class RequestLineTooLong(BrokerError):
    status = 414


def check_request_line():
    """414 for a request line over MAX_REQUEST_LINE bytes, as sent (gunicorn's RAW_URI, else the path and query).

    A request the Batch API runs inside a POST (app/servicenow_api/batch.py) did not come over the wire: exempt."""
    environ = request.environ  # one look-up through the request proxy, not four: this runs on every request
    if environ.get(contract.BATCHED_REQUEST):
        return None
    target = environ.get("RAW_URI") or request.path
    query = environ.get("QUERY_STRING", "")
    if query and "?" not in target:
        target = f"{target}?{query}"
    line = len(request.method) + 1 + len(target) + 1 + len(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))
    if line > MAX_REQUEST_LINE:
        raise RequestLineTooLong("Request line too long", f"the request line has {line} bytes; the limit is "
                                 f"{MAX_REQUEST_LINE}. Send a long Table API query through POST /api/now/v1/batch")
    return None


def too_large(limit):
    """The 413 for a body over `limit` bytes, worded as the webhook's refusal is."""
    return BodyTooLarge("Payload too large", f"The body is larger than the {limit} byte limit")


class ChunkedBodyLimit:
    """WSGI middleware giving a chunked body (no Content-Length) the size it turned out to have.

    Werkzeug stops reading such a body at the limit without saying that more followed, so a
    view would see a truncated body (a 400 for broken JSON, or worse, a shorter valid one).
    Reading one byte past the limit here tells the two apart: the request then carries a
    Content-Length of what was read (over the limit when it was, with nothing kept), and every
    route treats it as it treats an announced body. Nothing past the limit is read.
    """

    def __init__(self, wsgi_app, limit):
        self.wsgi_app = wsgi_app
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            body = _read_at_most(environ["wsgi.input"], self.limit + 1)
            # Werkzeug ignores Content-Length beside Transfer-Encoding: chunked; the body is no longer chunked.
            del environ["HTTP_TRANSFER_ENCODING"]
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(b"" if len(body) > self.limit else body)
        return self.wsgi_app(environ, start_response)


def _read_at_most(stream, size):
    parts, remaining = [], size
    while remaining > 0:
        part = stream.read(min(remaining, 64 * 1024))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: a row id, at most a 64-bit integer as both databases store it; a longer
    number matches no route (404) instead of overflowing in the query (500)."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def check_body_size():
    """413 for a body over the limit, before any view runs (the webhook refuses it itself, see above)."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.path != contract.WEBHOOK_PATH and limit is not None and (request.content_length or 0) > limit:
        raise too_large(limit)


def check_parameters():
    """Refuse a request whose parameters the views could only misread or fail on.

    EPM's webhook is left alone: it stores every delivery as it came (NULs become U+FFFD).
    """
    if request.path == contract.WEBHOOK_PATH:
        return None
    parameters = [value for _name, values in request.args.lists() for value in values]
    parameters += [value for value in (request.view_args or {}).values() if isinstance(value, str)]
    if any("\x00" in value for value in parameters):
        raise BadRequest("A parameter cannot contain a NUL character", "remove it from the query or the path")
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        if request.mimetype == "application/x-www-form-urlencoded":
            # Kept as sent (within the body limit): Slack's interactions are verified over their exact bytes.
            request.get_data(cache=True)
        fields = [value for _name, values in request.form.lists() for value in values]
        if any("\x00" in value for value in fields):
            raise BadRequest("A form field cannot contain a NUL character", "remove it and send the form again")
    # Browser forms may repeat a name (several choices); the JSON API's parameters take one value.
    repeated = sorted(name for name, values in request.args.lists() if len(values) > 1)
    if repeated and request.path.startswith("/api/"):
        raise BadRequest("Give each query parameter once", f"given more than once: {', '.join(repeated)}",
                         extra={"fields": {name: "given more than once" for name in repeated}})
    return None


def answer_headers(response):
    """HSTS over HTTPS, nosniff and no-store everywhere (static files are cached), the security headers on
    every HTML page, and when to come back after a 429."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", NO_STORE)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", _page_policy())
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, current_app.extensions.get(name, value))
    if response.status_code == 429 and "Retry-After" not in response.headers:
        # The sign-in throttle (app/auth/throttle.py) leaves its wait in g.
        response.headers["Retry-After"] = str(g.get("throttle_retry_after") or 60)
    return response


def content_security_policy(form_action_origins=()):
    """The policy, with the identity provider's origins (oidc_client.form_action_origins) allowed as a form's
    destination: Chromium holds the redirects that follow a form post to `form-action` (sign-out to the
    provider's end-session endpoint, a decision form sent on to the provider for step-up)."""
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    if not form_action_origins:
        return policy
    return policy.replace("form-action 'self'", "form-action 'self' " + " ".join(form_action_origins))


def _page_policy():
    """This page's policy. A page shown to someone who signs in through the provider may hold a form that
    leads there (sign-out, an Admin Access approval): the provider's discovery is read for it first."""
    settings = current_app.extensions["settings"]
    if not settings.oidc_enabled:
        return current_app.extensions["Content-Security-Policy"]
    account = g.get("account")
    signs_in_there = account is not None and getattr(account, "signs_in_with_provider", False)
    return content_security_policy(oidc_client.form_action_origins(settings, discover=signs_in_there))


def init_app(app):
    """Wire the checks into `app`; called last, so the request id is set before a 400 is logged."""
    app.extensions["Content-Security-Policy"] = content_security_policy()
    count = app.extensions["settings"].trusted_proxies
    if count > 0:
        # Only then are X-Forwarded-* believed: otherwise any client could pick the
        # address that throttling and the logs see, or claim HTTPS.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
    if app.config["MAX_CONTENT_LENGTH"] is not None:
        app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    app.before_request(check_request_line)
    app.before_request(check_body_size)
    app.before_request(check_parameters)
    app.after_request(answer_headers)
