"""Per-tenant billing details in the admin console (read only: Stripe is the source, and every
change goes through the billing services or Stripe's own dashboard).

dj-stripe registers an admin page for each of its ~40 models; the console keeps only what staff
use here (webhook endpoints, received webhooks and events). Stripe's dashboard shows the rest.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
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


DJSTRIPE_ADMIN_KEPT = {"webhookendpoint", "webhookeventtrigger", "event"}

for _model in apps.get_app_config("djstripe").get_models():
    if _model._meta.model_name not in DJSTRIPE_ADMIN_KEPT and admin.site.is_registered(_model):
        admin.site.unregister(_model)
