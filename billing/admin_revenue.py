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
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from billing import revenue
from billing.models import BillingAccount, RevenueSnapshot
from tenants.models import Tenant
from tenants.plans import SPECS

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 36
LINE_COLOUR = "#417690"  # the console's primary blue
BAR_COLOUR = "#79aec8"
GRID_COLOUR = "#cccccc"
TEXT_COLOUR = "#666666"


def dollars(cents: int | None) -> str:
    if cents is None:
        return "-"
    return f"${cents / 100:,.2f}"


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _nice_max(value: int) -> int:
    """A round top for the y axis (1, 2 or 5 x a power of ten, in cents)."""
    if value <= 0:
        return 100
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _svg(label: str, body: SafeString, height: int = HEIGHT) -> SafeString:
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" class="revenue-chart" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" width="100%" preserveAspectRatio="xMinYMin meet">{}</svg>',
        label,
        WIDTH,
        height,
        body,
    )


def _y_axis(top_value: int) -> SafeString:
    plot_h = HEIGHT - TOP - BOTTOM
    rows = []
    for n in range(5):
        value = top_value * n // 4
        y = TOP + plot_h - plot_h * n / 4
        rows.append(
            (
                LEFT,
                f"{y:.1f}",
                WIDTH - RIGHT,
                f"{y:.1f}",
                GRID_COLOUR,
                LEFT - 6,
                f"{y + 4:.1f}",
                dollars(value),
            )
        )
    return format_html_join(
        "",
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="1"/>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#666666">{}</text>',
        rows,
    )


def mrr_line_chart(history: list[dict[str, Any]]) -> SafeString | None:
    """MRR per snapshot day as a line; ``None`` without snapshots (empty state)."""
    if not history:
        return None
    top_value = _nice_max(max(int(point["mrr"]) for point in history))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = len(history)

    def xy(n: int, mrr: int) -> tuple[float, float]:
        x = LEFT + (plot_w * n / (count - 1) if count > 1 else plot_w / 2)
        return x, TOP + plot_h - plot_h * mrr / top_value

    points = [xy(n, int(point["mrr"])) for n, point in enumerate(history)]
    polyline = format_html(
        '<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>',
        " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
        LINE_COLOUR,
    )
    dots = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}: {}</title></circle>',
        (
            (f"{x:.1f}", f"{y:.1f}", LINE_COLOUR, point["date"], dollars(int(point["mrr"])))
            for (x, y), point in zip(points, history, strict=True)
        ),
    )
    first, last = history[0]["date"], history[-1]["date"]
    labels = format_html(
        '<text x="{}" y="{}" font-size="11" fill="{}">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="{}">{}</text>',
        LEFT,
        HEIGHT - 12,
        TEXT_COLOUR,
        first,
        WIDTH - RIGHT,
        HEIGHT - 12,
        TEXT_COLOUR,
        last,
    )
    return _svg("MRR over time", mark_safe(_y_axis(top_value) + polyline + dots + labels))  # noqa: S308


def plan_bar_chart(by_plan: dict[str, int]) -> SafeString | None:
    """MRR by plan as vertical bars; ``None`` when every plan is at 0 (empty state)."""
    bars_data = [(plan, cents) for plan, cents in revenue.plans_in_order(by_plan)]
    if not any(cents for _, cents in bars_data):
        return None
    top_value = _nice_max(max(cents for _, cents in bars_data))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars_data)
    bar_w = slot * 0.6
    rows = []
    for n, (plan, cents) in enumerate(bars_data):
        h = plot_h * cents / top_value
        x = LEFT + slot * n + (slot - bar_w) / 2
        y = TOP + plot_h - h
        name = str(SPECS[plan].name) if plan in SPECS else plan
        rows.append(
            (
                f"{x:.1f}",
                f"{y:.1f}",
                f"{bar_w:.1f}",
                f"{h:.1f}",
                BAR_COLOUR,
                name,
                dollars(cents),
                f"{x + bar_w / 2:.1f}",
                HEIGHT - 12,
                name,
            )
        )
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>'
        '<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666666">{}</text>',
        rows,
    )
    return _svg("MRR by plan", mark_safe(_y_axis(top_value) + bars))  # noqa: S308


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
