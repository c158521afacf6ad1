from __future__ import annotations

from datetime import UTC, datetime

from tenants.models import Tenant
from tenants.periods import billing_period


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_default_period_is_the_calendar_month_in_utc():
    period = billing_period(Tenant(), at(2026, 11, 30, 23, 59, 59))
    assert (period.start, period.end) == (at(2026, 11, 1), at(2026, 12, 1))
    december = billing_period(None, at(2026, 12, 31, 12))
    assert (december.start, december.end) == (at(2026, 12, 1), at(2027, 1, 1))
    assert period.key == "202611"
    assert period.seconds_left(at(2026, 11, 30, 23, 59, 0)) == 60


def test_anchored_periods_start_on_the_anchor_day_clamped_to_short_months():
    tenant = Tenant(billing_cycle_anchor=at(2026, 1, 31, 10, 30))
    feb = billing_period(tenant, at(2026, 3, 1))
    assert (feb.start, feb.end) == (at(2026, 2, 28, 10, 30), at(2026, 3, 31, 10, 30))
    before_the_hour = billing_period(tenant, at(2026, 3, 31, 10, 29))
    assert before_the_hour.start == at(2026, 2, 28, 10, 30)
    on_it = billing_period(tenant, at(2026, 3, 31, 10, 30))
    assert (on_it.start, on_it.end) == (at(2026, 3, 31, 10, 30), at(2026, 4, 30, 10, 30))
    assert on_it.key == "20260331T103000"
    mid = billing_period(Tenant(billing_cycle_anchor=at(2025, 6, 15)), at(2026, 1, 3))
    assert (mid.start, mid.end) == (at(2025, 12, 15), at(2026, 1, 15))
