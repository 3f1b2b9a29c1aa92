"""Operations: what ops see. Every webhook delivery (with replay), every call to EPM, the
service's own log, each ticket's processing history, and a dashboard of the last 30 days.

`init_app` sets up logging (JSON on stdout, a request id per request, WARNING+ kept in
the app-log table), registers the admin pages and their JSON twins, and logs every
refused webhook authentication so the dashboard can count them.
"""
import logging

from flask import request

from app import contract

# Each refused webhook delivery is one WARNING record of this logger, stored in the
# app-log table like every warning; the dashboard counts them.
WEBHOOK_AUTH_LOGGER = "app.ops.webhook_auth"
auth_log = logging.getLogger(WEBHOOK_AUTH_LOGGER)
REFUSED_WEBHOOK_STATUSES = (401, 403, 429)


def _log_refused_webhook(response):
    # 401: unknown account or wrong password; 403: a real account without the api role
    # (an approver's credentials typed into EPM); 429: refused unchecked after too many
    # failures. Each means a delivery from EPM was lost.
    if request.path == contract.WEBHOOK_PATH and response.status_code in REFUSED_WEBHOOK_STATUSES:
        credentials = request.authorization
        username = (credentials.username or "")[:150] if credentials is not None else None
        auth_log.warning("webhook authentication refused (HTTP %s) from %s for %s", response.status_code,
                         request.remote_addr, repr(username) if username else "no credentials")
    return response


def init_app(app):
    """Wire logging, the operations pages and API, and the webhook authentication counter into `app`."""
    from app.ops import api, views
    from app.ops.logging import configure_logging
    from app.web import csrf

    configure_logging(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)  # JSON with Basic auth only for its one write; never a browser form
    app.after_request(_log_refused_webhook)
