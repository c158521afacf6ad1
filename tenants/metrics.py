"""Metrics of tenants: sign-ups and usage as they happen, tenants by status and plan in beat's
snapshot (``leanvibe.metrics``). Label values are bounded sets (plans, statuses, metered
metrics), never a tenant."""

from __future__ import annotations

from django.db.models import Count
from prometheus_client import Counter

from leanvibe.metrics import GaugeValues, SnapshotGauge, snapshot_gauge_register
from tenants.models import Tenant
from tenants.plans import Plan

SIGNUPS = Counter("leanvibe_signups", "Organisations provisioned (sign-up, platform API, console, command).")
USAGE = Counter("leanvibe_usage", "Metered usage counted against the plans, by metric.", ["metric"])


def tenants_by_status_and_plan() -> GaugeValues:
    """One GROUP BY over the tenant table; every status and plan present, zeros included, so a
    series never disappears."""
    counts: dict[tuple[str, ...], float] = {
        (str(status), str(plan)): 0.0 for status in Tenant.Status for plan in Plan
    }
    rows = Tenant.objects.values_list("status", "plan").annotate(total=Count("id")).order_by()
    for status, plan, total in rows:
        counts[(str(status), str(plan))] = float(total)
    return counts


def register_tenant_gauges() -> None:
    snapshot_gauge_register(
        SnapshotGauge(
            name="leanvibe_tenants",
            documentation="Tenants by status and plan.",
            labels=("status", "plan"),
            compute=tenants_by_status_and_plan,
        )
    )
