"""Reads of projects in the current tenant's schema."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agents.models import Project


def project_list(*, status: str | None = None) -> QuerySet[Project]:
    qs = Project.objects.exclude(status=Project.Status.DELETED)
    if status:
        qs = qs.filter(status=status)
    return qs


def project_get(project_id: uuid.UUID | str) -> Project | None:
    """A non-deleted project, or ``None`` (also for ids that are not uuids)."""
    try:
        project_uuid = uuid.UUID(str(project_id))
    except ValueError:
        return None
    return project_list().filter(id=project_uuid).first()
