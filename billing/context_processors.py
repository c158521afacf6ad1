"""The dunning banner on every page of a tenant's site (one Redis read, no SQL)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from billing import access_flags
from billing.models import Access

BANNERS = {
    access_flags.DUNNING: "A payment failed. Update your payment method to avoid suspension.",
    Access.PAYMENT_REQUIRED: "Your trial has ended. Subscribe to keep creating and changing data.",
    Access.SUSPENDED: "This organisation is suspended for non-payment.",
}


def billing_banner(request: HttpRequest) -> dict[str, Any]:
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if tenant is None or user is None or not user.is_authenticated:
        return {}
    banner = BANNERS.get(access_flags.access_of(tenant.id))
    return {"billing_banner": banner} if banner else {}
