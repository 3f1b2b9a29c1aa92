"""Fixtures for the ITSM connector tests: clean token caches, and rules made as an admin would."""
import pytest

from app.epm.tokens import clear_token_cache
from app.itsm.base import tokens as itsm_tokens
from app.policies import rules as policy_rules


@pytest.fixture(autouse=True)
def fresh_token_caches():
    """Each test fetches its own tokens, as a new process would."""
    clear_token_cache()
    itsm_tokens.clear()
    yield
    clear_token_cache()
    itsm_tokens.clear()


@pytest.fixture
def add_rule():
    """Create a rule through the service the CLI and the admin page use."""

    def add(**values):
        raw = {"name": values.pop("name", "rule"), **{k: str(v) if not isinstance(v, str) else v
                                                       for k, v in values.items()}}
        return policy_rules.create_rule(raw, "root")

    return add
