"""The revenue dashboard of the admin console: the ``RevenueSnapshot`` changelist is replaced by
KPIs, MRR over time (line) and MRR by plan (bars), drawn as server-side SVG (no script, no CDN,
no inline style: the console's Content-Security-Policy holds), and tenants by plan and status.
Staff with a verified second factor only, like every console page (``admin_view``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.db.models import Count
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from billing import revenue
from billing.models import BillingAccount, RevenueSnapshot
from leanvibe import charts
from tenants.models import Tenant
from tenants.plans import SPECS

LINE_COLOUR = "#417690"  # the console's primary blue
BAR_COLOUR = "#79aec8"
CHART_CLASS = "revenue-chart"


def dollars(cents: int | None) -> str:
    if cents is None:
        return "-"
    return f"${cents / 100:,.2f}"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def mrr_line_chart(history: list[dict[str, Any]]) -> SafeString | None:
    """MRR per snapshot day as a line; ``None`` without snapshots (empty state)."""
    points = [charts.Point(str(p["date"]), str(p["date"]), int(p["mrr"])) for p in history]
    return charts.line_chart(
        points, label="MRR over time", fmt=dollars, colour=LINE_COLOUR, css_class=CHART_CLASS
    )


def plan_bar_chart(by_plan: dict[str, int]) -> SafeString | None:
    """MRR by plan as vertical bars; ``None`` when every plan is at 0 (empty state)."""
    points = [
        charts.Point(plan, str(SPECS[plan].name) if plan in SPECS else plan, cents)
        for plan, cents in revenue.plans_in_order(by_plan)
    ]
    return charts.bar_chart(
        points, label="MRR by plan", fmt=dollars, colour=BAR_COLOUR, css_class=CHART_CLASS
    )


@dataclass(frozen=True)
class PlanRow:
    plan: str
    name: str
    tenants: int
    by_status: list[int]
    by_billing: list[int]


def tenants_by_plan_and_status() -> tuple[list[str], list[str], list[PlanRow]]:
    """Tenants per plan: by our status and by the billing status of their subscription."""
    statuses = [str(value) for value in Tenant.Status.values]
    counts = {
        (row["plan"], row["status"]): row["n"]
        for row in Tenant.objects.values("plan", "status").annotate(n=Count("id"))
    }
    billing_of = dict(BillingAccount.objects.values_list("tenant_id", "status"))
    billing_counts: dict[tuple[str, str], int] = {}
    for tenant_id, plan in Tenant.objects.values_list("id", "plan"):
        key = (str(plan), billing_of.get(tenant_id) or "none")
        billing_counts[key] = billing_counts.get(key, 0) + 1
    billing_statuses = sorted({status for _, status in billing_counts})
    rows = [
        PlanRow(
            plan=str(plan),
            name=spec.name,
            tenants=sum(counts.get((str(plan), s), 0) for s in statuses),
            by_status=[counts.get((str(plan), s), 0) for s in statuses],
            by_billing=[billing_counts.get((str(plan), s), 0) for s in billing_statuses],
        )
        for plan, spec in SPECS.items()
    ]
    return statuses, billing_statuses, rows


class RevenueDashboardAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The ``RevenueSnapshot`` entry of the console opens the dashboard (snapshots are written
    only by the daily task and ``billing_revenue_snapshot``)."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        analytics = revenue.revenue_analytics(months=12)
        statuses, billing_statuses, plan_rows = tenants_by_plan_and_status()
        context = {
            **self.admin_site.each_context(request),
            "title": "Revenue",
            "opts": self.model._meta,
            "app_label": self.model._meta.app_label,
            "analytics": analytics,
            "kpis": [
                ("MRR", dollars(analytics["mrr"])),
                ("ARR", dollars(analytics["arr"])),
                ("ARPA", dollars(analytics["arpa"])),
                ("Paying tenants", str(analytics["paying_tenants"])),
                ("Churn (30 days)", percent(analytics["churn_rate"])),
                ("MRR growth (30 days)", percent(analytics["growth_rate"])),
                ("Revenue collected", dollars(analytics["total_revenue"])),
                ("Invoices paid / issued", f"{analytics['paid_invoices']} / {analytics['total_invoices']}"),
            ],
            "mrr_chart": mrr_line_chart(analytics["mrr_history"]),
            "plan_chart": plan_bar_chart(analytics["revenue_by_plan"]),
            "monthly_revenue": [
                (month, dollars(cents)) for month, cents in analytics["monthly_revenue"].items()
            ],
            "statuses": statuses,
            "billing_statuses": billing_statuses,
            "plan_rows": plan_rows,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "billing/admin/revenue_dashboard.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


admin.site.register(RevenueSnapshot, RevenueDashboardAdmin)
