"""Reads of billing: the catalogue as the API shows it, a tenant's subscription, its invoices."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import stripe

from billing.models import BillingAccount
from billing.stripe_api import billing_enabled
from billing.stripe_objects import as_dict, ts
from tenants.models import Tenant
from tenants.plans import GB, SPECS, PlanSpec


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
