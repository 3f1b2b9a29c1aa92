"""Registering the ops API and `/metrics` on the app (the pages are app/web/ops.py)."""


def init_app(app):
    """Add the ops API and the Prometheus endpoint to `app`."""
    from app.ops import api, metrics

    app.register_blueprint(api.bp)
    # JSON with Basic auth only for its one write; never a browser form.
    app.extensions["csrf"].exempt(api.bp)
    metrics.init_app(app)
