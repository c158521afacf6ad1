"""Per-tenant billing details in the admin console (read only: Stripe is the source, and every
change goes through the billing services or Stripe's own dashboard)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import BillingAccount


@admin.register(BillingAccount)
class BillingAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "tenant",
        "plan",
        "interval",
        "status",
        "access",
        "current_period_end",
        "payment_failed_at",
    )
    list_filter = ("access", "status", "plan")
    search_fields = ("tenant__organization_name", "tenant__schema_name", "stripe_customer_id")
    list_select_related = ("tenant",)

    def get_readonly_fields(self, request: HttpRequest, obj: BillingAccount | None = None) -> list[str]:
        return [field.name for field in BillingAccount._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from billing import admin_revenue as admin_revenue  # noqa: E402  the revenue dashboard registers itself
