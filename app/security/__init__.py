"""Defences that cut across features: sign-in throttling, secrets at rest, response headers, proxies."""


def init_app(app):
    """Wire the cross-cutting defences into `app`."""
    from app.security import throttle

    throttle.init_app(app)
