"""Fixtures for the operations tests: the faked EPM tenant of the log tests."""
from tests.logs.conftest import APPLICATION_URL, epm  # noqa: F401 - `epm` is a fixture

__all__ = ["APPLICATION_URL", "epm"]
