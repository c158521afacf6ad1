"""The billing period of a tenant: usage limits reset at its start.

By default a period is the calendar month in UTC. A tenant with a ``billing_cycle_anchor`` (set
by billing once a subscription exists: Stripe's ``billing_cycle_anchor``) has monthly periods
starting on the anchor's day and time of day; on a shorter month the day is clamped to its last
day, as Stripe does.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from django.utils import timezone

if TYPE_CHECKING:
    from tenants.models import Tenant


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    anchored: bool = False

    @property
    def key(self) -> str:
        """Names the period in counter keys: ``YYYYMM`` for a calendar month, the start to the
        second for an anchored period (a new anchor starts a new count)."""
        return f"{self.start:%Y%m%dT%H%M%S}" if self.anchored else f"{self.start:%Y%m}"

    def seconds_left(self, now: datetime) -> int:
        return max(1, int((self.end - now).total_seconds() + 0.999))


def _month_shift(year: int, month: int, shift: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + shift
    return index // 12, index % 12 + 1


def _on_anchor(anchor: datetime, year: int, month: int) -> datetime:
    day = min(anchor.day, calendar.monthrange(year, month)[1])
    return anchor.replace(year=year, month=month, day=day)


def billing_period(tenant: Tenant | None = None, now: datetime | None = None) -> Period:
    """The period containing ``now`` (default: the current time)."""
    now = (now or timezone.now()).astimezone(UTC)
    anchor = getattr(tenant, "billing_cycle_anchor", None)
    if anchor is None:
        year, month = _month_shift(now.year, now.month, 1)
        return Period(
            now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
            datetime(year, month, 1, tzinfo=UTC),
        )
    anchor = anchor.astimezone(UTC)
    start = _on_anchor(anchor, now.year, now.month)
    if start > now:
        start = _on_anchor(anchor, *_month_shift(now.year, now.month, -1))
    return Period(start, _on_anchor(anchor, *_month_shift(start.year, start.month, 1)), anchored=True)
