"""A self-service export of all of a tenant's data (in its schema): the row that tracks the
archive the worker writes, and stays after the archive is deleted (status ``expired``)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class DataExport(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Being written"
        READY = "ready", "Ready to download"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Deleted after its retention"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_email = models.EmailField(blank=True)
    # Progress: parts of the archive written (one per registered ``ExportPart``) out of the total.
    parts_done = models.PositiveSmallIntegerField(default=0)
    parts_total = models.PositiveSmallIntegerField(default=0)
    #: The archive's path relative to ``EXPORTS_ROOT`` (empty until ready and once deleted).
    file = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "running", "ready", "failed", "expired"]),
                name="data_export_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"export {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED, self.Status.EXPIRED)

    @property
    def progress(self) -> int:
        """Percent of the parts written (100 once ready)."""
        if self.status in (self.Status.READY, self.Status.EXPIRED):
            return 100
        return int(100 * self.parts_done / self.parts_total) if self.parts_total else 0
