"""Embedded PostgreSQL and Redis for ``make test`` on a machine without them.

Loaded by pytest.ini (``-p leanvibe.pytest_plugin``), so it runs before pytest-django imports
the settings; the settings themselves start nothing. In development, with ``DATABASE_URL`` or
``REDIS_URL`` unset, it starts the embedded servers and exports the variables (test subprocesses
inherit them). Set them to test against real servers.
"""

from __future__ import annotations

import pytest

from leanvibe.environment import start_embedded_services


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    start_embedded_services()
