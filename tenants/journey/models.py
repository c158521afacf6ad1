"""The journey's records live in the public schema: the operator's funnel across every tenant
is one query, and a tenant's journey is read without entering its schema."""

from __future__ import annotations

from django.db import models


class StepDone(models.Model):
    """A step the tenant has done, ticked once (by the feature's report or by the backfill)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="journey_steps")
    step = models.CharField(max_length=64)
    done_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "step"], name="journey_step_once")]

    def __str__(self) -> str:
        return f"{self.step} ({self.done_at:%Y-%m-%d})"


class LevelUnlocked(models.Model):
    """A level all of whose steps are done. ``emailed_at`` is claimed atomically by the task
    that sends the "Achievement unlocked" email, so it goes out once per level and tenant."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="journey_levels")
    number = models.PositiveSmallIntegerField()
    unlocked_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number"], name="journey_level_once"),
            models.CheckConstraint(
                condition=models.Q(number__gte=1, number__lte=6), name="journey_level_valid"
            ),
        ]
        indexes = [
            models.Index(
                fields=["unlocked_at"],
                name="journey_level_unsent",
                condition=models.Q(emailed_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"level {self.number} ({self.unlocked_at:%Y-%m-%d})"


class ActivationFunnel(LevelUnlocked):
    """The console's entry for the activation funnel (``tenants.journey.admin``): no table of
    its own, the unlocks read across every tenant."""

    class Meta:
        proxy = True
        verbose_name = "activation funnel"
        verbose_name_plural = "activation funnel"
