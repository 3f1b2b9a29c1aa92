"""Strict-Transport-Security on answers sent over HTTPS (directly, or via a trusted proxy).

The other headers every HTML page carries (CSP, nosniff, Referrer-Policy, framing)
are set by app/web; HSTS is set here because it depends on how the request arrived,
which only ProxyFix (app/security/__init__.py) knows when a proxy terminates TLS.
"""
from flask import request

HSTS = "max-age=31536000; includeSubDomains"


def init_app(app):
    @app.after_request
    def _strict_transport(response):
        if request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
