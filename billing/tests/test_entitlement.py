"""The entitlement rule: status and the items' period decide the plan and the access."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.entitlement import Entitlement, entitlement

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
GRACE = timedelta(days=14)
BEFORE = Entitlement("starter", "ok")


def _decide(status, *, period_end=NOW + timedelta(days=10), failed=None, plan="professional"):
    return entitlement(
        status=status,
        plan=plan,
        current_period_end=period_end,
        payment_failed_at=failed,
        grace=GRACE,
        now=NOW,
        previous=BEFORE,
    )


@pytest.mark.parametrize(
    ("status", "failed", "expected"),
    [
        ("trialing", None, Entitlement("professional", "ok")),
        ("active", None, Entitlement("professional", "ok")),
        ("past_due", NOW - timedelta(days=3), Entitlement("professional", "ok")),
        ("past_due", NOW - timedelta(days=14), Entitlement("professional", "suspended")),
        ("paused", None, Entitlement("professional", "payment_required")),
        ("canceled", None, Entitlement("starter", "ok")),
        ("unpaid", NOW - timedelta(days=20), Entitlement("starter", "suspended")),
        ("incomplete_expired", None, Entitlement("starter", "ok")),
        ("incomplete", None, BEFORE),
        ("", None, BEFORE),
    ],
)
def test_status_decides_plan_and_access(status, failed, expected):
    assert _decide(status, failed=failed) == expected


def test_an_active_subscription_whose_period_ran_out_long_ago_is_not_trusted():
    assert _decide("active", period_end=NOW - timedelta(days=2)).access == "ok"
    assert _decide("active", period_end=NOW - timedelta(days=4)).access == "payment_required"
