"""Per-tenant billing details in the admin console (read only: Stripe is the source, and every
change goes through the billing services or Stripe's own dashboard).

dj-stripe's own admin pages are left out (Stripe's dashboard shows its objects); the webhooks
received are listed read only.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from djstripe.models import WebhookEventTrigger

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


# dj-stripe's own admin pages are not part of the console: ~40 of them, and their custom
# "action" URLs answer 500 to a malformed model name (leanvibe/tests/test_bad_input.py).
for _model in apps.get_app_config("djstripe").get_models():
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(WebhookEventTrigger)
class WebhookEventTriggerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Webhooks received: whether each was verified and processed, and the error if it failed
    (beat runs the unprocessed ones again)."""

    list_display = ("id", "created", "valid", "processed", "event", "exception")
    list_filter = ("valid", "processed")

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEventTrigger | None = None) -> list[str]:
        return [field.name for field in WebhookEventTrigger._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


from billing import admin_revenue as admin_revenue  # noqa: E402  the revenue dashboard registers itself
