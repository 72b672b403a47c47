"""Unit tests are pure logic: none of them may start PostgreSQL or the broker (`make test-unit`
promises a run without servers). A unit test that asks for them, directly or through `database_url`
or `topics`, fails here instead of quietly starting them; it belongs in tests/integration.
"""

from __future__ import annotations

import pytest
from support import Servers


@pytest.fixture(scope="session")
def servers() -> Servers:
    pytest.fail("a unit test asked for the servers; tests that need them live in tests/integration or tests/e2e")
