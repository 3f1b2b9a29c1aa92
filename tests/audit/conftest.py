"""Fixtures for the audit tests: the audit entries written so far."""
import pytest

from app.audit.models import AuditEntry


@pytest.fixture
def audit_entries(app):
    """A function listing audit entries oldest first, optionally of one action."""

    def entries(action=None):
        query = AuditEntry.select().order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return list(query)

    return entries
