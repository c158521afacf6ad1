"""Reads of billing: usage analytics, rows still to report to Stripe."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import UsageRecord
from billing.services import pending_windows
from tenants.models import Tenant
from tenants.plans import METERED


def usage_unreported(*, limit: int = 1000) -> QuerySet[UsageRecord]:
    """Ledger rows not yet reported to Stripe (oldest first), for the Meter event reporter:
    each is sent with its ``idempotency_key`` as the event's ``identifier``."""
    return UsageRecord.objects.filter(reported_at__isnull=True).order_by("created_at", "id")[:limit]


def usage_analytics(*, tenant: Tenant, start: date, end: date) -> dict[str, Any]:
    """Usage per metered metric and UTC day, ``start`` to ``end`` inclusive: the ledger plus the
    windows still in Redis (not yet flushed; a window already in the ledger is not added twice).
    Every day of the range is listed, with 0 when nothing was used."""
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
