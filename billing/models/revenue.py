"""Daily revenue snapshots (public schema): MRR over time for the console's chart and the
analytics API's growth rate. Written only by ``billing.revenue.revenue_snapshot_take``."""

from __future__ import annotations

from django.db import models


class RevenueSnapshot(models.Model):
    date = models.DateField(unique=True)
    # Integer cents (USD), as computed by billing.revenue.mrr_compute on that day.
    mrr = models.BigIntegerField(default=0)
    arr = models.BigIntegerField(default=0)
    active_subscriptions = models.PositiveIntegerField(default=0)
    paying_tenants = models.PositiveIntegerField(default=0)
    # MRR in cents by plan id ({"starter": 2900, ...}).
    by_plan = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("date",)
        verbose_name = "revenue snapshot"
        verbose_name_plural = "revenue dashboard"
        constraints = [
            models.CheckConstraint(condition=models.Q(mrr__gte=0), name="revenue_snapshot_mrr_not_negative"),
        ]

    def __str__(self) -> str:
        return f"revenue on {self.date}: MRR {self.mrr} cents"
