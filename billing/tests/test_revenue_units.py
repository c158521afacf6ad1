"""The MRR arithmetic on hand-made Stripe objects: intervals, quantities, coupons, rounding."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.conf import settings

from billing import revenue, tasks
from billing.models import RevenueSnapshot

NOW = dt.datetime(2026, 7, 2, tzinfo=dt.UTC)
NOW_TS = int(NOW.timestamp())


def _sub(
    *items: tuple[int, str, int, int],
    status: str = "active",
    discounts: list[Any] | None = None,
    metered: bool = False,
) -> dict[str, Any]:
    """items: (unit amount in cents, interval, interval_count, quantity)."""
    data = [
        {
            "quantity": quantity,
            "price": {
                "unit_amount": amount,
                "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"},
            },
        }
        for amount, interval, count, quantity in items
    ]
    if metered:
        data.append(
            {"price": {"unit_amount": 1, "recurring": {"interval": "month", "usage_type": "metered"}}}
        )
    return {"status": status, "customer": "cus_1", "items": {"data": data}, "discounts": discounts or []}


def _no_discount(discount_id: str) -> dict[str, Any] | None:
    return None


def _mrr(sub: dict[str, Any], coupons: dict[str, Any] | None = None) -> int:
    return revenue.subscription_mrr(sub, now=NOW, coupons=(coupons or {}).get, discounts=_no_discount)


def _discount(coupon: Any, *, end: int | None = None) -> dict[str, Any]:
    return {"object": "discount", "start": NOW_TS - 86400, "end": end, "source": {"coupon": coupon}}


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([(2900, "month", 1, 1)], 2900),
        ([(29000, "year", 1, 1)], 2417),  # 29000 / 12 = 2416.67 -> 2417
        ([(10000, "month", 3, 1)], 3333),  # quarterly: 3333.33 -> 3333
        ([(1000, "week", 1, 1)], 4333),  # 1000 x 52 / 12 = 4333.33
        ([(100, "day", 1, 2)], 6083),  # 100 x 2 x 365 / 12 = 6083.33
        ([(2900, "month", 1, 3), (500, "month", 1, 2)], 9700),
        ([(99000, "year", 2, 1)], 4125),  # every two years: 99000 / 24
    ],
)
def test_items_are_normalised_to_a_month(items, expected):
    assert _mrr(_sub(*items, metered=True)) == expected


@pytest.mark.parametrize(
    "status", ["trialing", "canceled", "incomplete", "incomplete_expired", "paused", "unpaid"]
)
def test_only_active_and_past_due_count(status):
    assert _mrr(_sub((2900, "month", 1, 1), status=status)) == 0
    assert _mrr(_sub((2900, "month", 1, 1), status="past_due")) == 2900


def test_coupons():
    yearly = (99000, "year", 1, 1)  # 8250 a month
    forever_pct = {"id": "p", "duration": "forever", "percent_off": 12.5, "amount_off": None}
    # 8250 x 0.875 = 7218.75 -> 7219 (rounded once, per subscription)
    assert _mrr(_sub(yearly, discounts=[_discount(forever_pct)])) == 7219
    # amount_off is per invoice: 1200 off a yearly invoice is 100 a month.
    forever_amount = {"id": "a", "duration": "forever", "percent_off": None, "amount_off": 1200}
    assert _mrr(_sub(yearly, discounts=[_discount(forever_amount)])) == 8150
    # Coupons given by id are looked up in the mirror.
    assert _mrr(_sub(yearly, discounts=[_discount("a")]), coupons={"a": forever_amount}) == 8150
    once = {"id": "o", "duration": "once", "percent_off": 50, "amount_off": None}
    assert _mrr(_sub(yearly, discounts=[_discount(once)])) == 8250
    repeating = {"id": "r", "duration": "repeating", "percent_off": 50, "amount_off": None}
    assert _mrr(_sub(yearly, discounts=[_discount(repeating, end=NOW_TS + 86400)])) == 4125
    assert _mrr(_sub(yearly, discounts=[_discount(repeating, end=NOW_TS)])) == 8250  # ended
    # Never below zero, whatever the discounts.
    huge = {"id": "h", "duration": "forever", "percent_off": None, "amount_off": 10**9}
    assert _mrr(_sub(yearly, discounts=[_discount(huge), _discount(forever_pct)])) == 0
    # An unknown coupon or discount id takes nothing off.
    assert _mrr(_sub(yearly, discounts=["di_unknown", _discount("missing")])) == 8250


def test_mrr_compute_sums_rounded_subscriptions_by_plan_and_customer(db):
    subs = [
        _sub((10000, "month", 3, 1)),  # 3333.33 -> 3333
        _sub((10000, "month", 3, 1)),  # 3333
        _sub((1000, "month", 1, 1), status="trialing"),
    ]
    subs[0]["items"]["data"][0]["price"]["lookup_key"] = "leanvibe_starter_month"
    subs[1]["customer"] = "cus_2"
    result = revenue.mrr_compute(now=NOW, subscriptions=subs)
    assert (result.mrr, result.arr) == (6666, 79992)  # not round(6666.67)
    assert result.by_plan == {"starter": 3333, "professional": 0, "enterprise": 0, "other": 3333}
    assert (result.active_subscriptions, result.paying_tenants, result.arpa) == (2, 2, 3333)


def test_churn_needs_a_base():
    assert revenue.churn_rate(now=NOW, subscriptions=[]) is None


def test_the_daily_task_is_scheduled_and_idempotent(db):
    entry = settings.CELERY_BEAT_SCHEDULE["billing-revenue-snapshot"]
    assert entry["task"] == "billing.tasks.revenue_snapshot_take"
    first = tasks.revenue_snapshot_take.apply().get()
    second = tasks.revenue_snapshot_take.apply().get()
    assert first == second
    assert RevenueSnapshot.objects.count() == 1
    assert RevenueSnapshot.objects.get().mrr == 0
