"""Fixtures for the audit, metrics and readiness tests: browser-like sessions and tickets."""
import pytest

from app.audit.models import AuditEntry
from app.models import Task
from tests import factories


@pytest.fixture
def ticket(deliver):
    """An application-access ticket created by a delivery from EPM."""
    answer = deliver(factories.application_request())
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return Task.get(Task.number == answer.json["result"]["ticket"])


@pytest.fixture
def audit_entries(app):
    """A function listing audit entries oldest first, optionally of one action."""

    def entries(action=None):
        query = AuditEntry.select().order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return list(query)

    return entries
