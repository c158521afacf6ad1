"""Reads of billing: the catalogue as the API shows it, a tenant's subscription and invoices,
usage analytics, and ledger rows still to report to Stripe."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import stripe
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.metering import pending_windows
from billing.models import BillingAccount, UsageRecord
from billing.stripe_api import billing_enabled
from billing.stripe_objects import as_dict, ts
from tenants.models import Tenant
from tenants.periods import Period, billing_period
from tenants.plans import GB, METERED, SPECS, PlanSpec, Resource, limits_for
from tenants.usage import meter_local_flush, period_usage, usage_for


def _gb(value: int | None) -> int | None:
    return None if value is None else value // GB


def plan_public(spec: PlanSpec) -> dict[str, Any]:
    """A plan for ``GET /api/v1/billing/plans``: prices in cents, storage in GB, overage unit
    prices as decimal strings of cents (a unit may cost a fraction of a cent)."""
    limits = spec.limits
    return {
        "id": spec.plan.value,
        "name": spec.name,
        "tagline": spec.tagline,
        "prices": {
            str(interval): {"amount": amount, "currency": spec.currency}
            for interval, amount in spec.prices.items()
        },
        "limits": {
            "projects": limits.projects,
            "users": limits.users,
            "api_calls": limits.api_calls,
            "ai_requests": limits.ai_requests,
            "storage_gb": _gb(limits.storage_bytes),
        },
        "overage": {
            "policy": str(spec.overage.policy),
            "grace_percent": spec.overage.grace_percent,
            "unit_prices": {str(metric): str(price) for metric, price in spec.overage.unit_prices.items()},
        },
        "features": list(spec.features),
    }


def plans_public() -> list[dict[str, Any]]:
    return [plan_public(spec) for spec in SPECS.values()]


def billing_account_of(tenant: Tenant) -> BillingAccount | None:
    return BillingAccount.objects.filter(tenant_id=tenant.id).first()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def subscription_public(tenant: Tenant, account: BillingAccount | None) -> dict[str, Any]:
    if account is None or not account.stripe_subscription_id:
        return {
            "plan": tenant.plan,
            "interval": None,
            "status": None,
            "trial_end": None,
            "current_period_end": None,
            "cancel_at_period_end": False,
            "payment_method": None,
            "payment_required": False,
        }
    card = (
        {"brand": account.payment_method_brand, "last4": account.payment_method_last4}
        if account.payment_method_last4
        else None
    )
    return {
        "plan": account.plan,
        "interval": account.interval or None,
        "status": account.status,
        "trial_end": _iso(account.trial_end),
        "current_period_end": _iso(account.current_period_end),
        "cancel_at_period_end": account.cancel_at_period_end,
        "payment_method": card,
        "payment_required": account.payment_required,
    }


def _period(start: Any, end: Any) -> dict[str, str | None]:
    return {"start": _iso(ts(start)), "end": _iso(ts(end))}


def invoice_public(invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": invoice.get("id"),
        "number": invoice.get("number"),
        "status": invoice.get("status"),
        "amount_due": invoice.get("amount_due", 0),
        "amount_paid": invoice.get("amount_paid", 0),
        "currency": invoice.get("currency"),
        "period": _period(invoice.get("period_start"), invoice.get("period_end")),
        "created": _iso(ts(invoice.get("created"))),
        "hosted_invoice_url": invoice.get("hosted_invoice_url"),
        "invoice_pdf": invoice.get("invoice_pdf"),
    }


def invoices_of(account: BillingAccount | None, *, limit: int = 24) -> list[dict[str, Any]]:
    if account is None or not account.stripe_customer_id or not billing_enabled():
        return []
    invoices = stripe.Invoice.list(customer=account.stripe_customer_id, limit=limit)
    return [invoice_public(as_dict(invoice)) for invoice in invoices.data]


def invoice_upcoming_of(account: BillingAccount | None) -> dict[str, Any] | None:
    """Stripe's preview of the next invoice, metered overage lines included."""
    if account is None or not account.stripe_subscription_id or not billing_enabled():
        return None
    preview = as_dict(
        stripe.Invoice.create_preview(
            customer=account.stripe_customer_id, subscription=account.stripe_subscription_id
        )
    )
    lines = (preview.get("lines") or {}).get("data") or []
    return {
        "amount_due": preview.get("amount_due", 0),
        "subtotal": preview.get("subtotal", 0),
        "total": preview.get("total", 0),
        "currency": preview.get("currency"),
        "period": _period(preview.get("period_start"), preview.get("period_end")),
        "next_payment_attempt": _iso(ts(preview.get("next_payment_attempt"))),
        "lines": [
            {
                "description": line.get("description"),
                "amount": line.get("amount", 0),
                "quantity": line.get("quantity"),
                "price": ((line.get("pricing") or {}).get("price_details") or {}).get("price"),
                "period": _period(
                    (line.get("period") or {}).get("start"), (line.get("period") or {}).get("end")
                ),
            }
            for line in lines
        ],
    }


def usage_unreported(*, limit: int = 1000) -> QuerySet[UsageRecord]:
    """Ledger rows not yet reported to Stripe (oldest first), for the Meter event reporter:
    each is sent with its ``idempotency_key`` as the event's ``identifier``."""
    return UsageRecord.objects.filter(reported_at__isnull=True).order_by("created_at", "id")[:limit]


def usage_analytics(*, tenant: Tenant, start: date, end: date) -> dict[str, Any]:
    """Usage per metered metric and UTC day, ``start`` to ``end`` inclusive: the ledger plus the
    windows still in Redis (not yet flushed; a window already in the ledger is not added twice).
    Every day of the range is listed, with 0 when nothing was used."""
    meter_local_flush()  # this process's calls counted on a lease are read too
    since = datetime.combine(start, time.min, tzinfo=UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    daily: dict[str, dict[date, int]] = {metric: defaultdict(int) for metric in METERED}
    records: dict[str, int] = dict.fromkeys(METERED, 0)
    rows = (
        UsageRecord.objects.filter(
            tenant=tenant, metric__in=METERED, window_start__gte=since, window_start__lt=until
        )
        .annotate(day=TruncDate("window_start", tzinfo=UTC))
        .values("metric", "day")
        .annotate(quantity=Sum("quantity"), records=Count("id"))
    )
    for row in rows:
        daily[row["metric"]][row["day"]] += int(row["quantity"])
        records[row["metric"]] += int(row["records"])

    pending = [
        w
        for w in pending_windows(tenant_id=tenant.id)
        if w.metric in daily and since <= w.start < until and w.quantity > 0
    ]
    flushed = (
        set(
            UsageRecord.objects.filter(
                tenant=tenant, idempotency_key__in=[w.idempotency_key for w in pending]
            ).values_list("idempotency_key", flat=True)
        )
        if pending
        else set()
    )
    for w in pending:
        if w.idempotency_key not in flushed:
            daily[w.metric][w.start.date()] += w.quantity
            records[w.metric] += 1

    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    metrics = {}
    for metric in METERED:
        total = sum(daily[metric].values())
        metrics[metric] = {
            "total_usage": total,
            "records": records[metric],
            "average_per_day": round(total / len(days), 2),
            "daily": [{"date": day.isoformat(), "quantity": daily[metric].get(day, 0)} for day in days],
        }
    return {"start_date": start.isoformat(), "end_date": end.isoformat(), "metrics": metrics}


# --- usage against the plan's limits (the billing page) ---------------------------------------

#: Warn from this share of a limit (percent).
USAGE_WARN_PERCENT = 80
#: The order and words of the billing page's usage bars.
USAGE_LABELS: dict[str, str] = {
    Resource.API_CALLS: "API calls",
    Resource.AI_REQUESTS: "AI requests",
    Resource.STORAGE: "Storage",
    Resource.USERS: "Seats",
    Resource.PROJECTS: "Projects",
}


@dataclass(frozen=True)
class UsageMeter:
    """Use of one limited resource: metered ones (``metered``) for the current billing period,
    the others as they stand now. ``limit`` None is unlimited."""

    resource: str
    label: str
    used: int
    limit: int | None
    metered: bool
    in_bytes: bool = False

    @property
    def percent(self) -> int:
        """Share of the limit, rounded half up, not capped (150 past it by half); 0 when unlimited."""
        if self.limit is None:
            return 0
        if self.limit == 0:
            return 100 if self.used else 0
        return (200 * self.used + self.limit) // (2 * self.limit)  # half up, in integers

    @property
    def aria_percent(self) -> int:
        """``percent`` within 0-100, for ``aria-valuenow``."""
        return min(100, self.percent)

    @property
    def bar_percent(self) -> str:
        """Width of the bar (percent of the track, at most 100), two decimals."""
        if self.limit is None:
            return "0"
        if self.limit == 0:
            return "100" if self.used else "0"
        return f"{min(100.0, 100 * self.used / self.limit):.2f}".rstrip("0").rstrip(".")

    @property
    def state(self) -> str:
        """``unlimited``, ``over`` (past the limit), ``warn`` (from 80 %) or ``ok``."""
        if self.limit is None:
            return "unlimited"
        if self.used > self.limit:
            return "over"
        if self.used * 100 >= USAGE_WARN_PERCENT * self.limit and self.used:
            return "warn"
        return "ok"


def usage_meters(tenant: Tenant) -> list[UsageMeter]:
    """Every limited resource of the tenant's plan, metered ones first: the registered quota
    resources (``tenants.usage.usage_for``) and the metered metrics they lack (``ai_requests``,
    counted by ``tenants.usage.usage_record``). Runs in the tenant's schema (it counts rows)."""
    limits = limits_for(tenant.plan)
    found = {u.resource: u for u in usage_for(tenant)}
    meters = []
    for resource, label in USAGE_LABELS.items():
        if resource in found:
            used = found[resource].used
        elif resource in METERED:
            used = period_usage(tenant, resource)
        else:
            continue  # not measured here (its app is not installed)
        meters.append(
            UsageMeter(
                resource=str(resource),
                label=label,
                used=used,
                limit=limits.limit_for(resource),
                metered=resource in METERED,
                in_bytes=resource == Resource.STORAGE,
            )
        )
    return meters


def usage_period(tenant: Tenant) -> Period:
    """The billing period metered usage is counted in now."""
    return billing_period(tenant)
