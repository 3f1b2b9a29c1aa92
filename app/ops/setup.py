"""Registering the operations pages, their JSON twins and `/metrics` on the app."""


def init_app(app):
    """Add the operations pages, the ops API and the Prometheus endpoint to `app`."""
    from app.ops import api, metrics, views

    app.register_blueprint(views.bp)
    app.register_blueprint(api.bp)
    # JSON with Basic auth only for its one write; never a browser form.
    app.extensions["csrf"].exempt(api.bp)
    metrics.init_app(app)
