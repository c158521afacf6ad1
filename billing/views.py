"""The billing page of a tenant's site: members see the plan and its state; owners also pay,
change plan, cancel or resume (each action a POST that calls the same service as the API)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST
from redis.exceptions import RedisError

from accounts.models import Role
from accounts.permissions import role_required
from billing import selectors, services
from billing.forms import PlanChangeForm
from billing.stripe_api import billing_enabled
from leanvibe import charts
from leanvibe.access import public_page
from leanvibe.errors import DomainError
from tenants.links import tenant_url
from tenants.models import Tenant
from tenants.plans import Resource

logger = logging.getLogger(__name__)

#: Days of the billing page's daily usage charts (today included).
USAGE_CHART_DAYS = 30
#: Metrics drawn day by day: the first always (an empty state without use), the others when used.
USAGE_CHART_METRICS: dict[str, tuple[str, str]] = {
    Resource.API_CALLS: ("API calls", "API call"),
    Resource.AI_REQUESTS: ("AI requests", "AI request"),
}
USAGE_CHART_CLASS = "usage-chart"
USAGE_BAR_COLOUR = "#4f46e5"  # --accent of leanvibe.css (the stylesheet sets it too)


@dataclass(frozen=True)
class UsageChart:
    metric: str
    name: str
    svg: SafeString | None
    days: list[dict[str, Any]]
    total: int
    average_per_day: float
    peak: dict[str, Any] | None


def _usage_charts(tenant: Tenant) -> list[UsageChart]:
    """The last ``USAGE_CHART_DAYS`` days of each charted metric, from the same selector as
    ``GET /api/v1/billing/usage/analytics`` (the ledger plus the windows not yet flushed)."""
    end = timezone.now().date()
    analytics = selectors.usage_analytics(
        tenant=tenant, start=end - timedelta(days=USAGE_CHART_DAYS - 1), end=end
    )
    found = []
    for n, (metric, (name, noun)) in enumerate(USAGE_CHART_METRICS.items()):
        data = analytics["metrics"][metric]
        if n and not data["total_usage"]:
            continue

        def tip(point: charts.Point, noun: str = noun) -> str:
            return f"{point.key}: {point.value:,} {noun}{'' if point.value == 1 else 's'}"

        days = data["daily"]
        points = [charts.Point(day["date"], day["date"][5:], day["quantity"]) for day in days]
        peak = max(days, key=lambda d: d["quantity"]) if data["total_usage"] else None
        found.append(
            UsageChart(
                metric=metric,
                name=name,
                svg=charts.bar_chart(
                    points,
                    label=f"{name} per day, {days[0]['date']} to {days[-1]['date']}",
                    fmt=charts.count,
                    colour=USAGE_BAR_COLOUR,
                    css_class=USAGE_CHART_CLASS,
                    bar_class="usage-chart-bar",
                    every_label=False,
                    title=tip,
                ),
                days=days,
                total=data["total_usage"],
                average_per_day=data["average_per_day"],
                peak=peak,
            )
        )
    return found


def _usage_context(tenant: Tenant) -> dict[str, Any]:
    try:
        return {
            "usage_meters": selectors.usage_meters(tenant),
            "usage_period": selectors.usage_period(tenant),
            "usage_charts": _usage_charts(tenant),
            "usage_chart_days": USAGE_CHART_DAYS,
        }
    except RedisError:
        logger.exception("usage of tenant %s unavailable", tenant.id)
        return {"usage_unavailable": True}


#: Subscription states in which the owner is offered Checkout (not paying, or no subscription).
_SUBSCRIBE_STATES = (None, "trialing", "paused", "canceled", "incomplete", "incomplete_expired", "unpaid")
SUBSCRIBE_PREFIX = "subscribe"


def _page(
    request: HttpRequest,
    form: PlanChangeForm | None = None,
    status: int = 200,
    subscribe_form: PlanChangeForm | None = None,
) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    account = selectors.billing_account_of(tenant)
    subscription = selectors.subscription_public(tenant, account)
    initial = {"plan_id": tenant.plan, "interval": "month"}
    context: dict[str, Any] = {
        "subscription": subscription,
        "account": account,
        "billing_on": billing_enabled(),
        "is_owner": getattr(request.user, "role", "") == Role.OWNER,
        "form": form or PlanChangeForm(initial=initial),
        "can_subscribe": subscription["status"] in _SUBSCRIBE_STATES,
        # Back from Checkout: the webhook may not have arrived yet.
        "checkout_pending": request.GET.get("checkout") == "success" and subscription["status"] != "active",
        "subscribe_form": subscribe_form or PlanChangeForm(initial=initial, prefix=SUBSCRIBE_PREFIX),
        "invoices": [],
        **_usage_context(tenant),
    }
    try:
        context["invoices"] = selectors.invoices_of(account)
    except Exception:
        context["invoices_unavailable"] = True
    return render(request, "billing/billing.html", context, status=status)


@role_required(Role.MEMBER)
def billing_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _run(request: HttpRequest, action: Any, done: str) -> HttpResponse:
    try:
        result = action()
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("billing")
    if isinstance(result, str):
        return redirect(result)
    messages.success(request, done)
    return redirect("billing")


@role_required(Role.OWNER)
@require_POST
def billing_portal_view(request: HttpRequest) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    return _run(
        request,
        lambda: services.portal_session_create(tenant=tenant, return_url=tenant_url(tenant, "/billing/")),
        "",
    )


@role_required(Role.OWNER)
@require_POST
def billing_cancel_view(request: HttpRequest) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    return _run(
        request,
        lambda: services.subscription_cancel(tenant=tenant, cancel=True),
        "Cancelled at the period's end.",
    )


@role_required(Role.OWNER)
@require_POST
def billing_resume_view(request: HttpRequest) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    return _run(
        request, lambda: services.subscription_cancel(tenant=tenant, cancel=False), "Subscription resumed."
    )


@role_required(Role.OWNER)
@require_POST
def billing_change_view(request: HttpRequest) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    form = PlanChangeForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    plan, interval = form.cleaned_data["plan_id"], form.cleaned_data["interval"]
    account = selectors.billing_account_of(tenant)
    if account is None or account.status not in ("trialing", "active", "past_due"):
        # No paid subscription to change: subscribe through Stripe Checkout.
        return _run(request, lambda: _checkout_url(tenant, plan, interval), "")
    return _run(
        request,
        lambda: services.subscription_change(tenant=tenant, plan=plan, interval=interval),
        "Plan change sent to Stripe; the new limits apply once it is confirmed.",
    )


def _checkout_url(tenant: Tenant, plan: str, interval: str) -> str:
    """A Checkout session for ``plan``, as ``POST /api/v1/billing/subscribe`` without a payment
    method makes it; Stripe sends the owner back to the billing page."""
    result = services.subscribe(
        tenant=tenant,
        plan=plan,
        interval=interval,
        payment_method_id=None,
        success_url=tenant_url(tenant, "/billing/?checkout=success"),
        cancel_url=tenant_url(tenant, "/billing/?checkout=cancel"),
    )
    return str(result["checkout_url"])


@role_required(Role.OWNER)
@require_POST
def billing_subscribe_view(request: HttpRequest) -> HttpResponse:
    """Subscribe to a paid plan through Stripe Checkout (the trial is replaced once paid)."""
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    form = PlanChangeForm(request.POST, prefix=SUBSCRIBE_PREFIX)
    if not form.is_valid():
        return _page(request, subscribe_form=form, status=400)
    plan, interval = form.cleaned_data["plan_id"], form.cleaned_data["interval"]
    return _run(request, lambda: _checkout_url(tenant, plan, interval), "")


def _dollars(cents: int) -> str:
    return f"{cents // 100:,}" if cents % 100 == 0 else f"{cents / 100:,.2f}"


@public_page("the public pricing page, from the plan catalogue")
def pricing_page(request: HttpRequest) -> HttpResponse:
    plans = selectors.plans_public()
    for plan in plans:
        plan["month_dollars"] = _dollars(plan["prices"]["month"]["amount"])
        plan["year_dollars"] = _dollars(plan["prices"]["year"]["amount"])
    return render(request, "billing/pricing.html", {"plans": plans})
