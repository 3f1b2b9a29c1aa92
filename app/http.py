"""What every request passes: the trusted proxies, the parameter check, and the headers every answer carries.

Requests are held to what the JSON API's description can mean, with a 400: a query
parameter given twice on the JSON API, and a NUL character in a query or path parameter
or a form field anywhere (PostgreSQL refuses NUL in any text, even to compare, so pages
and API alike would answer 500).
"""
from flask import g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from app import contract
from app.errors import BadRequest

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
    """HSTS over HTTPS, the security headers on every HTML page, and when to come back after a 429."""
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html":
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    if response.status_code == 429 and "Retry-After" not in response.headers:
        # The sign-in throttle (app/auth/throttle.py) leaves its wait in g.
        response.headers["Retry-After"] = str(g.get("throttle_retry_after") or 60)
    return response


def init_app(app):
    """Wire the checks into `app`; called last, so the request id is set before a 400 is logged."""
    count = app.extensions["settings"].trusted_proxies
    if count > 0:
        # Only then are X-Forwarded-* believed: otherwise any client could pick the
        # address that throttling and the logs see, or claim HTTPS.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
    app.before_request(check_parameters)
    app.after_request(answer_headers)
