"""Fixtures for the browser pages: tickets from EPM (`make_ticket` and the signed-in `web` client are in
tests/conftest.py)."""
import pytest

from tests import factories


@pytest.fixture
def application_ticket(make_ticket):
    return make_ticket(factories.application_request())


@pytest.fixture
def admin_ticket(make_ticket):
    return make_ticket(factories.admin_request())
