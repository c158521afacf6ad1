"""Reads of projects and development tasks in the current tenant's schema."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from agents.models import DevelopmentTask, Project, TaskEvent
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


def task_list(*, status: str | None = None, project_id: uuid.UUID | None = None) -> QuerySet[DevelopmentTask]:
    qs = DevelopmentTask.objects.select_related("agent", "project")
    if status:
        qs = qs.filter(status=status)
    if project_id:
        qs = qs.filter(project_id=project_id)
    return qs


def task_get(task_id: uuid.UUID | str) -> DevelopmentTask | None:
    """A task, or ``None`` (also for ids that are not uuids)."""
    task_uuid = parse_uuid(task_id)
    return task_list().filter(id=task_uuid).first() if task_uuid else None


def task_events_after(*, task: DevelopmentTask, seq: int = 0) -> QuerySet[TaskEvent]:
    """The task's events after ``seq``, in order: the replay before following its Redis Stream."""
    return TaskEvent.objects.filter(task=task, seq__gt=seq).order_by("seq")
