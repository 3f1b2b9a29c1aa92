"""Fixtures for the ITSM connector tests, shared with the policy tests: clean token caches, rules made as an
admin would."""
from tests.policies.conftest import add_rule, fresh_token_caches  # noqa: F401 - fixtures

__all__ = ["add_rule", "fresh_token_caches"]
