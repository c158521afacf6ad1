"""Helpers shared by the journey's tests in every app."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command


def journey_check(handle: Any) -> str:
    """``manage.py journey_check`` of a tenant, failing the test (with its output) when the
    ticks disagree with the records."""
    out = StringIO()
    try:
        call_command("journey_check", handle.tenant.schema_name, stdout=out)
    except SystemExit:
        pytest.fail(out.getvalue())
    return out.getvalue()
