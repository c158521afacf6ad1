"""Revenue analytics: MRR, ARR, churn, invoices and the daily snapshots, read from the Stripe
objects dj-stripe mirrors (their ``stripe_data``). Never calls Stripe.

Definitions (docs/architecture.md, "Revenue analytics"):

- MRR, as Stripe counts it: subscriptions whose status is ``active`` or ``past_due`` (not
  ``trialing``, ``paused``, ``incomplete``, ``unpaid``, ``canceled``). Each licensed item's
  ``unit_amount x quantity`` normalised to a month (``year`` ÷ 12, ``week`` x 52 ÷ 12, ``day`` x
  365 ÷ 12, all ÷ ``interval_count``); metered items, one-off invoice items and tax are left
  out. Discounts in effect are taken off: ``forever`` coupons, and ``repeating`` ones while
  their discount has not ended (Stripe does the same); ``once`` coupons are not. A percentage
  applies to the subscription's monthly amount; an ``amount_off`` is per invoice, so it is
  normalised by the subscription's interval like a price. Each subscription's monthly amount is
  rounded half-up to the cent, never below 0, and then summed. ARR = 12 x MRR.
- Paying tenants: distinct Stripe customers (one per tenant) with MRR above 0. ARPA = MRR ÷
  paying tenants, rounded half-up to the cent.
- Churn rate: subscriptions that ended (``ended_at``) in the 30 days before ``now`` ÷
  subscriptions that were paying 30 days before ``now`` (started, not ended, out of trial);
  ``None`` without such a base.
- Growth rate: (MRR - MRR of the latest snapshot dated 30 days or more before today) ÷ that
  snapshot's MRR; ``None`` without one (or when it was 0).
- Revenue: ``amount_paid`` of paid invoices, by the month (UTC) of
  ``status_transitions.paid_at``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from djstripe.models import Coupon as DjstripeCoupon
from djstripe.models import Discount as DjstripeDiscount
from djstripe.models import Invoice as DjstripeInvoice
from djstripe.models import Subscription as DjstripeSubscription

from billing.models import BillingAccount, RevenueSnapshot
from billing.stripe_objects import licensed_items, object_id
from tenants.models import Tenant
from tenants.plans import SPECS

MRR_STATUSES = frozenset({"active", "past_due"})
NOT_PAYING_STATUSES = frozenset({"incomplete", "incomplete_expired"})
CHURN_WINDOW = dt.timedelta(days=30)
OTHER_PLAN = "other"
DEFAULT_MONTHS = 12
MAX_MONTHS = 36

_PLAN_BY_LOOKUP_KEY = {
    spec.price_lookup_key(interval): str(plan) for plan, spec in SPECS.items() for interval in spec.prices
}
# Months per interval (a price's amount ÷ this = its amount per month).
_MONTHS_PER_INTERVAL = {
    "month": Decimal(1),
    "year": Decimal(12),
    "week": Decimal(12) / Decimal(52),
    "day": Decimal(12) / Decimal(365),
}
_CENT = Decimal(1)


def _cents(value: Decimal) -> int:
    return int(value.quantize(_CENT, rounding=ROUND_HALF_UP))


def _ts(value: Any) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(value), tz=dt.UTC) if value else None


# --- one subscription --------------------------------------------------------------------------
def _months_of(recurring: dict[str, Any]) -> Decimal:
    per = _MONTHS_PER_INTERVAL.get(str(recurring.get("interval") or "month"), Decimal(1))
    return per * Decimal(int(recurring.get("interval_count") or 1))


def item_monthly(item: dict[str, Any]) -> Decimal:
    """A licensed item's amount per month, unrounded (cents)."""
    price = item.get("price") or {}
    recurring = price.get("recurring") or {}
    if recurring.get("usage_type", "licensed") != "licensed":
        return Decimal(0)
    amount = price.get("unit_amount_decimal") or price.get("unit_amount") or 0
    quantity = item.get("quantity")
    quantity = Decimal(1 if quantity is None else int(quantity))
    return Decimal(str(amount)) * quantity / _months_of(recurring)


def plan_of(sub: dict[str, Any]) -> str:
    """The catalogue's plan id of a subscription (price lookup key, then price or subscription
    metadata), else ``other``."""
    for item in licensed_items(sub):
        price = item.get("price") or {}
        plan = _PLAN_BY_LOOKUP_KEY.get(str(price.get("lookup_key") or ""))
        plan = plan or (price.get("metadata") or {}).get("plan") or (sub.get("metadata") or {}).get("plan")
        if plan in SPECS:
            return str(plan)
    return OTHER_PLAN


CouponLookup = Callable[[str], dict[str, Any] | None]
DiscountLookup = Callable[[str], dict[str, Any] | None]


def _coupon_of(discount: dict[str, Any], coupons: CouponLookup) -> dict[str, Any] | None:
    # API 2026-08-26: ``source.coupon``; older versions: ``coupon``. Either an id or the object.
    ref = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
    if isinstance(ref, dict):
        return ref
    return coupons(str(ref)) if ref else None


def discount_monthly_off(
    discount: dict[str, Any], coupon: dict[str, Any], *, gross: Decimal, months: Decimal, now: dt.datetime
) -> Decimal:
    """What one discount takes off a subscription's monthly amount at ``now`` (unrounded)."""
    start, end = _ts(discount.get("start")), _ts(discount.get("end"))
    if coupon.get("duration") == "once" or (start and start > now) or (end and end <= now):
        return Decimal(0)
    if coupon.get("percent_off") is not None:
        return gross * Decimal(str(coupon["percent_off"])) / 100
    if coupon.get("amount_off") is not None:
        return Decimal(int(coupon["amount_off"])) / months
    return Decimal(0)


def subscription_mrr(
    sub: dict[str, Any], *, now: dt.datetime, coupons: CouponLookup, discounts: DiscountLookup
) -> int:
    """The subscription's MRR in cents (0 unless active or past due)."""
    if sub.get("status") not in MRR_STATUSES:
        return 0
    items = licensed_items(sub)
    gross = sum((item_monthly(item) for item in items), Decimal(0))
    months = _months_of(((items[0].get("price") or {}).get("recurring") or {}) if items else {})
    off = Decimal(0)
    for ref in sub.get("discounts") or []:
        discount = ref if isinstance(ref, dict) else discounts(str(ref))
        coupon = _coupon_of(discount, coupons) if discount else None
        if discount and coupon:
            off += discount_monthly_off(discount, coupon, gross=gross, months=months, now=now)
    return max(_cents(gross - min(off, gross)), 0)


def _was_paying(sub: dict[str, Any], at: dt.datetime) -> bool:
    start = _ts(sub.get("start_date") or sub.get("created"))
    ended = _ts(sub.get("ended_at"))
    trial_end = _ts(sub.get("trial_end"))
    return (
        sub.get("status") not in NOT_PAYING_STATUSES
        and start is not None
        and start <= at
        and (ended is None or ended > at)
        and (trial_end is None or trial_end <= at)
    )


def _churned(sub: dict[str, Any], since: dt.datetime, now: dt.datetime) -> bool:
    ended = _ts(sub.get("ended_at") or sub.get("canceled_at"))
    trial_end = _ts(sub.get("trial_end"))
    return (
        sub.get("status") == "canceled"
        and ended is not None
        and since < ended <= now
        and (trial_end is None or trial_end < ended)  # a trial that ended is not a lost payer
        and _was_paying(sub, since)
    )


# --- the whole platform --------------------------------------------------------------------------
@dataclass
class MrrResult:
    mrr: int = 0
    active_subscriptions: int = 0
    paying_tenants: int = 0
    by_plan: dict[str, int] = field(default_factory=dict)

    @property
    def arr(self) -> int:
        return 12 * self.mrr

    @property
    def arpa(self) -> int:
        return _cents(Decimal(self.mrr) / self.paying_tenants) if self.paying_tenants else 0


def _subscriptions() -> list[dict[str, Any]]:
    return [dict(data) for data in DjstripeSubscription.objects.values_list("stripe_data", flat=True)]


def _lookups() -> tuple[CouponLookup, DiscountLookup]:
    coupons = {c.id: dict(c.stripe_data) for c in DjstripeCoupon.objects.only("id", "stripe_data")}
    discounts = {d.id: dict(d.stripe_data) for d in DjstripeDiscount.objects.only("id", "stripe_data")}
    return coupons.get, discounts.get


def _empty_by_plan() -> dict[str, int]:
    return dict.fromkeys((str(plan) for plan in SPECS), 0)


def mrr_compute(
    *, now: dt.datetime | None = None, subscriptions: Iterable[dict[str, Any]] | None = None
) -> MrrResult:
    now = now or timezone.now()
    coupons, discounts = _lookups()
    result = MrrResult(by_plan=_empty_by_plan())
    paying: set[str] = set()
    for sub in _subscriptions() if subscriptions is None else subscriptions:
        mrr = subscription_mrr(sub, now=now, coupons=coupons, discounts=discounts)
        if sub.get("status") in MRR_STATUSES:
            result.active_subscriptions += 1
        if mrr <= 0:
            continue
        result.mrr += mrr
        plan = plan_of(sub)
        result.by_plan[plan] = result.by_plan.get(plan, 0) + mrr
        paying.add(object_id(sub.get("customer")))
    result.paying_tenants = len(paying)
    return result


def churn_rate(*, now: dt.datetime, subscriptions: list[dict[str, Any]]) -> float | None:
    since = now - CHURN_WINDOW
    base = sum(1 for sub in subscriptions if _was_paying(sub, since))
    if not base:
        return None
    lost = sum(1 for sub in subscriptions if _churned(sub, since, now))
    return round(lost / base, 4)


def _month_keys(now: dt.datetime, months: int) -> list[str]:
    year, month = now.year, now.month
    keys = []
    for _ in range(months):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return keys[::-1]


@dataclass
class InvoiceTotals:
    total_revenue: int = 0
    total_invoices: int = 0
    paid_invoices: int = 0
    monthly_revenue: dict[str, int] = field(default_factory=dict)


def invoice_totals(*, now: dt.datetime, months: int) -> InvoiceTotals:
    totals = InvoiceTotals(monthly_revenue=dict.fromkeys(_month_keys(now, months), 0))
    for data in DjstripeInvoice.objects.values_list("stripe_data", flat=True).iterator():
        if data.get("status") == "draft":
            continue
        totals.total_invoices += 1
        if data.get("status") != "paid":
            continue
        totals.paid_invoices += 1
        amount = int(data.get("amount_paid") or 0)
        totals.total_revenue += amount
        paid_at = _ts((data.get("status_transitions") or {}).get("paid_at") or data.get("created"))
        key = f"{paid_at:%Y-%m}" if paid_at else ""
        if key in totals.monthly_revenue:
            totals.monthly_revenue[key] += amount
    return totals


def growth_rate(*, mrr: int, today: dt.date) -> float | None:
    base = (
        RevenueSnapshot.objects.filter(date__lte=today - CHURN_WINDOW)
        .order_by("-date")
        .values_list("mrr", flat=True)
        .first()
    )
    if not base:
        return None
    return round((mrr - base) / base, 4)


def tenants_by_status() -> dict[str, dict[str, int]]:
    """Tenants by our status (active, suspended) and by billing status (Stripe's subscription
    status of the tenant's current subscription; ``none`` without one)."""
    tenant = Counter(str(s) for s in Tenant.objects.values_list("status", flat=True))
    billing_of = dict(BillingAccount.objects.values_list("tenant_id", "status"))
    billing: Counter[str] = Counter()
    for tenant_id in Tenant.objects.values_list("id", flat=True):
        billing[billing_of.get(tenant_id) or "none"] += 1
    return {"tenant": dict(sorted(tenant.items())), "billing": dict(sorted(billing.items()))}


def tenants_by_plan() -> dict[str, int]:
    counts = Counter(str(p) for p in Tenant.objects.values_list("plan", flat=True))
    return {**_empty_by_plan(), **counts}


def mrr_history(*, limit: int = 365) -> list[dict[str, Any]]:
    rows = RevenueSnapshot.objects.order_by("-date").values("date", "mrr")[:limit]
    return [{"date": row["date"].isoformat(), "mrr": row["mrr"]} for row in reversed(list(rows))]


def revenue_analytics(*, months: int = DEFAULT_MONTHS, now: dt.datetime | None = None) -> dict[str, Any]:
    """The body of ``GET /api/v1/billing/revenue/analytics`` (amounts in integer cents)."""
    now = now or timezone.now()
    subscriptions = _subscriptions()
    mrr = mrr_compute(now=now, subscriptions=subscriptions)
    invoices = invoice_totals(now=now, months=months)
    return {
        "mrr": mrr.mrr,
        "arr": mrr.arr,
        "total_revenue": invoices.total_revenue,
        "monthly_revenue": invoices.monthly_revenue,
        "growth_rate": growth_rate(mrr=mrr.mrr, today=now.date()),
        "total_invoices": invoices.total_invoices,
        "paid_invoices": invoices.paid_invoices,
        "churn_rate": churn_rate(now=now, subscriptions=subscriptions),
        "arpa": mrr.arpa,
        "active_subscriptions": mrr.active_subscriptions,
        "paying_tenants": mrr.paying_tenants,
        "revenue_by_plan": mrr.by_plan,
        "tenants_by_status": tenants_by_status(),
        "mrr_history": mrr_history(),
        "currency": "usd",
    }


# --- snapshots -----------------------------------------------------------------------------------
def revenue_snapshot_take(
    *, day: dt.date | None = None, now: dt.datetime | None = None
) -> tuple[RevenueSnapshot, bool]:
    """Record today's MRR (or label it ``day``): the mirrored state as it is now. Run again the
    same day, the day's row is updated (beat and the command are idempotent)."""
    now = now or timezone.now()
    day = day or timezone.localdate(now)
    result = mrr_compute(now=now)
    with transaction.atomic():
        snapshot, created = RevenueSnapshot.objects.update_or_create(
            date=day,
            defaults={
                "mrr": result.mrr,
                "arr": result.arr,
                "active_subscriptions": result.active_subscriptions,
                "paying_tenants": result.paying_tenants,
                "by_plan": result.by_plan,
            },
        )
    return snapshot, created


def plans_in_order(by_plan: dict[str, int]) -> list[tuple[str, int]]:
    """Plans in catalogue order, then anything else."""
    order = {str(plan): n for n, plan in enumerate(SPECS)}
    return sorted(by_plan.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
