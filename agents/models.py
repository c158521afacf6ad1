"""Projects live in each tenant's schema."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower


class Project(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"
        DELETED = "deleted", "Deleted"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=2000)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A deleted project frees its name.
            models.UniqueConstraint(
                Lower("name"),
                condition=~models.Q(status="deleted"),
                name="project_name_unique_while_not_deleted",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "archived", "deleted"]),
                name="project_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name
