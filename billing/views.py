"""The billing page of a tenant's site: members see the plan and its state; owners also pay,
change plan, cancel or resume (each action a POST that calls the same service as the API)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import role_required
from billing import selectors, services
from billing.forms import PlanChangeForm
from billing.stripe_api import billing_enabled
from leanvibe.access import public_page
from leanvibe.errors import DomainError
from tenants.links import tenant_url
from tenants.models import Tenant


def _page(request: HttpRequest, form: PlanChangeForm | None = None, status: int = 200) -> HttpResponse:
    tenant: Tenant = request.tenant  # type: ignore[attr-defined]
    account = selectors.billing_account_of(tenant)
    context: dict[str, Any] = {
        "subscription": selectors.subscription_public(tenant, account),
        "account": account,
        "billing_on": billing_enabled(),
        "is_owner": getattr(request.user, "role", "") == Role.OWNER,
        "form": form or PlanChangeForm(initial={"plan_id": tenant.plan, "interval": "month"}),
        "invoices": [],
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
        return _run(
            request,
            lambda: services.subscribe(
                tenant=tenant,
                plan=plan,
                interval=interval,
                payment_method_id=None,
                success_url=tenant_url(tenant, "/billing/?checkout=success"),
                cancel_url=tenant_url(tenant, "/billing/?checkout=cancel"),
            )["checkout_url"],
            "",
        )
    return _run(
        request,
        lambda: services.subscription_change(tenant=tenant, plan=plan, interval=interval),
        "Plan change sent to Stripe; the new limits apply once it is confirmed.",
    )


def _dollars(cents: int) -> str:
    return f"{cents // 100:,}" if cents % 100 == 0 else f"{cents / 100:,.2f}"


@public_page("the public pricing page, from the plan catalogue")
def pricing_page(request: HttpRequest) -> HttpResponse:
    plans = selectors.plans_public()
    for plan in plans:
        plan["month_dollars"] = _dollars(plan["prices"]["month"]["amount"])
        plan["year_dollars"] = _dollars(plan["prices"]["year"]["amount"])
    return render(request, "billing/pricing.html", {"plans": plans})
