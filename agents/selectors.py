"""Reads of projects in the current tenant's schema."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agents.models import Project
from leanvibe.parsing import parse_uuid


def project_list(*, status: str | None = None) -> QuerySet[Project]:
    qs = Project.objects.exclude(status=Project.Status.DELETED)
    if status:
        qs = qs.filter(status=status)
    return qs


def project_get(project_id: uuid.UUID | str) -> Project | None:
    """A non-deleted project, or ``None`` (also for ids that are not uuids)."""
    project_uuid = parse_uuid(project_id)
    return project_list().filter(id=project_uuid).first() if project_uuid else None
