"""Tenants live in the public schema: one row per customer organisation, plus its domains."""

from __future__ import annotations

import uuid

from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from tenants.plans import Plan
from tenants.tenant_settings import TenantSettings


class Tenant(TenantMixin):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization_name = models.CharField(max_length=200)
    # The subdomain is also the schema name (TenantMixin.schema_name); kept as one column.
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.STARTER)
    billing_email = models.EmailField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    settings = models.JSONField(default=dict, blank=True)
    # Set when the follow-up email has gone out (claimed atomically, so it goes out once).
    followup_sent_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Start of the subscription's billing cycle (set by billing); None: calendar months in UTC.
    # Metered limits reset at each period's start (tenants.periods.billing_period).
    billing_cycle_anchor = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Schemas are made by tenants.schemas (clone of the template), never by migrating on save.
    auto_create_schema = False
    auto_drop_schema = True

    class Meta:
        ordering = ["organization_name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(plan__in=["starter", "professional", "enterprise"]),
                name="tenant_plan_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization_name} ({self.schema_name})"

    @property
    def email(self) -> str:
        """Where invoices go: a subscriber model of dj-stripe must have an ``email``."""
        return self.billing_email

    @property
    def subdomain(self) -> str:
        return self.schema_name

    @property
    def typed_settings(self) -> TenantSettings:
        """``settings`` read through its schema (defaults for what an old row lacks). Written only
        by ``tenants.services.tenant_settings_update``."""
        return TenantSettings.from_stored(self.settings)

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def primary_domain(self) -> str:
        domain = self.domains.filter(is_primary=True).values_list("domain", flat=True).first()
        return domain or ""


class Domain(DomainMixin):
    pass


class PooledSchema(models.Model):
    """A pre-cloned copy of the template schema, waiting to be renamed into a new tenant."""

    schema_name = models.CharField(max_length=63, unique=True)
    template_fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.schema_name
