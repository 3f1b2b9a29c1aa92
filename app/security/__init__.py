"""Defences that cut across features: sign-in throttling, secrets at rest, headers, proxies."""
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app):
    """Wire the cross-cutting defences into `app`."""
    from app.security import headers, secrets, throttle

    settings = app.extensions["settings"]
    secrets.configure(settings.secret_key)
    if settings.trusted_proxies > 0:
        # Only then are X-Forwarded-* believed: otherwise any client could pick the
        # address that throttling and the logs see, or claim HTTPS.
        count = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
    throttle.init_app(app)
    headers.init_app(app)
