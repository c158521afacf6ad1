"""The usage ledger: what each tenant used of each metered metric, durable in PostgreSQL."""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant


class UsageRecord(models.Model):
    """One amount of a metered metric: a flushed one-minute window of the Redis counters
    (``counter``) or one ``POST /api/v1/billing/usage`` (``api``).

    ``idempotency_key`` is unique per tenant and begins with the tenant's id, so it is unique
    platform-wide too: the flush uses ``<tenant>:<metric>:<window start>``, the API
    ``<tenant>:api:<client key or a random one>``. The Stripe Billing Meter event reporting this
    row uses it as its ``identifier``; ``reported_at`` is set once Stripe has it."""

    class Source(models.TextChoices):
        COUNTER = "counter", "Counter flush"
        API = "api", "Usage API"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_records")
    metric = models.CharField(max_length=32)
    quantity = models.BigIntegerField()
    #: The window counted (a minute for ``counter``; start == end, the time of the call, for
    #: ``api``). Analytics date a row by ``window_start``.
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices)
    metadata = models.JSONField(default=dict, blank=True)
    #: At most 100 characters: a Stripe Meter event's ``identifier`` is.
    idempotency_key = models.CharField(max_length=100)
    #: The answer of the call that made an ``api`` row, returned again on a repeated key.
    response = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["window_start", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="usage_record_key_unique"),
            models.CheckConstraint(condition=models.Q(quantity__gt=0), name="usage_record_quantity_positive"),
            models.CheckConstraint(
                condition=models.Q(window_end__gte=models.F("window_start")), name="usage_record_window_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "metric", "window_start"], name="usage_record_analytics"),
            models.Index(
                fields=["created_at"],
                name="usage_record_unreported",
                condition=models.Q(reported_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.metric} {self.quantity} @ {self.window_start:%Y-%m-%d %H:%M}"
