"""Billing state per tenant, in the public schema: what Stripe last said of the tenant's
subscription (re-read by id, never taken from an event's payload) and what we decided from it
(``access``), plus the dunning bookkeeping."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone

from tenants.models import Tenant
from tenants.plans import Plan


class Access(models.TextChoices):
    OK = "ok", "Paid or trialing"
    # Trial ended without a card (subscription paused): read, export and subscribe only.
    PAYMENT_REQUIRED = "payment_required", "Payment required"
    # Grace period after a failed payment is over: only sign-in and billing.
    SUSPENDED = "suspended", "Suspended for non-payment"


class BillingAccount(models.Model):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="billing_account")
    stripe_customer_id = models.CharField(max_length=255, blank=True, db_index=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.STARTER)
    interval = models.CharField(max_length=10, blank=True)
    # Stripe's subscription status (trialing, active, past_due, paused, unpaid, canceled,
    # incomplete, incomplete_expired); blank before the first subscription.
    status = models.CharField(max_length=30, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    payment_method_brand = models.CharField(max_length=30, blank=True)
    payment_method_last4 = models.CharField(max_length=4, blank=True)
    access = models.CharField(max_length=20, choices=Access.choices, default=Access.OK)
    # Dunning: set by invoice.payment_failed, cleared by invoice.paid.
    payment_failed_at = models.DateTimeField(null=True, blank=True)
    # The last reminder day (0, 3, 7) whose email went out; claimed atomically by the sweep.
    dunning_email_day = models.SmallIntegerField(null=True, blank=True)
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Test mode with BILLING_TEST_CLOCKS: the customer lives on its own Stripe test clock, and
    # billing decisions for it (grace period, dunning days, usage timestamps) follow the clock's
    # time, kept here from its ``test_helpers.test_clock.ready`` events.
    stripe_test_clock_id = models.CharField(max_length=255, blank=True, db_index=True)
    test_clock_time = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(access__in=["ok", "payment_required", "suspended"]),
                name="billing_account_access_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"billing of {self.tenant_id}: {self.plan} {self.status or '-'} ({self.access})"

    @property
    def payment_required(self) -> bool:
        return self.access != Access.OK

    @property
    def in_dunning(self) -> bool:
        return self.payment_failed_at is not None

    def billing_now(self, wall: datetime | None = None) -> datetime:
        """The time billing decisions about this tenant are made at: its test clock's, if it is
        on one, else the wall clock."""
        if self.stripe_test_clock_id and self.test_clock_time is not None:
            return self.test_clock_time
        return wall or timezone.now()
