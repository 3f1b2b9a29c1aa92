"""The browser interface: sign-in, the ticket list and page, decisions, who is elevated now, configuration, users,
and the admin pages for policies, ITSM connections, operations and the audit log.

`init_app` wires it into the app: session cookie rules, CSRF protection for every
browser form (the Basic-auth JSON blueprints are exempt), the page blueprints,
and template helpers (app/http.py sets the security headers every HTML page carries).
"""
from flask import g
from flask_wtf.csrf import CSRFProtect

from app import contract
from app.auth import oidc_client, sessions
from app.web import formatting

csrf = CSRFProtect()

# Blueprints that authenticate with HTTP Basic and take JSON, never a browser form.
CSRF_EXEMPT_BLUEPRINTS = ("intake", "decisions_api", "ops_api", "slack_interactions", "servicenow_table_api.batch")


def init_app(app):
    """Register the browser pages on `app` (after the API blueprints, which CSRF must skip)."""
    from app.web import (account, audit, configuration, elevated, itsm, oidc, ops, policies, signin, tickets,
                         two_factor, users)

    sessions.init_app(app)
    oidc_client.init_app(app)
    # The token lives as long as the session it is bound to, which sign-in renews;
    # an approver's form left open over lunch should still submit.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)

    csrf.init_app(app)
    for name in CSRF_EXEMPT_BLUEPRINTS:
        csrf.exempt(app.blueprints[name])

    for blueprint in (signin.bp, oidc.bp, account.bp, two_factor.bp, tickets.bp, elevated.bp, configuration.bp,
                      users.bp, policies.bp, itsm.bp, audit.bp, ops.bp):
        app.register_blueprint(blueprint)

    formatting.register(app)

    @app.context_processor
    def _page_context():
        # Only what the access check already loaded: error pages (a database outage
        # among them) must render without touching the database.
        account = g.get("account")
        return {
            "current_account": account,
            "is_admin": account is not None and account.role == contract.ROLE_ADMIN,
            "is_approver": account is not None and account.role in contract.APPROVER_ROLES,
            "max_reason_length": contract.MAX_REASON_LENGTH,
        }
