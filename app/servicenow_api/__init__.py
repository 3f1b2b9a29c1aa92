"""A read-only subset of ServiceNow's REST API over the broker's tickets and the people they name, Basic auth only.

PAM products, pysnc and pysnow read the broker as they would an instance: the Table API
(app/servicenow_api/views.py), its Batch (batch.py) and Aggregate (stats.py) subsets."""
from app.servicenow_api import batch, stats
from app.servicenow_api.views import DISPLAY_MODES, MAX_LIMIT, TABLE_API_ROLES, bp

bp.register_blueprint(stats.bp)
bp.register_blueprint(batch.bp)

__all__ = ["DISPLAY_MODES", "MAX_LIMIT", "TABLE_API_ROLES", "bp"]
