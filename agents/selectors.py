"""Reads of projects and development tasks in the current tenant's schema."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Avg, Count, F, Max, Q, QuerySet, Sum

from agents.models import Artifact, DevelopmentTask, Project, TaskEvent, TaskStep
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


EVENTS_PAGE_SIZE = 500


def task_steps(*, task: DevelopmentTask) -> QuerySet[TaskStep]:
    return TaskStep.objects.filter(task=task).order_by("started_at", "id")


def task_artifacts(*, task: DevelopmentTask) -> QuerySet[Artifact]:
    return Artifact.objects.filter(task=task).order_by("path")


def task_events_page(*, task: DevelopmentTask, after: int = 0, limit: int = EVENTS_PAGE_SIZE) -> EventsPage:
    """At most ``limit`` events after ``after``; ``next`` is the last seq given (``after`` when
    none), ``done`` whether the task's ``done`` event is among the events up to ``next``."""
    events = list(task_events_after(task=task, seq=after)[:limit])
    next_seq = events[-1].seq if events else after
    done = any(e.type == "done" for e in events) or (
        TaskEvent.objects.filter(task=task, type="done", seq__lte=next_seq).exists()
    )
    return EventsPage(events=events, next=next_seq, done=done)


@dataclass(frozen=True)
class EventsPage:
    events: list[TaskEvent]
    next: int
    done: bool


def _rate(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 1) if whole else 0.0


def ai_productivity() -> dict[str, Any]:
    """The tenant's agent statistics (``GET /api/v1/analytics/ai-productivity``). Rates are
    percentages; ``productivity_score`` (0-100) weighs the completion rate 70 % and the
    first-attempt pass rate 30 %."""
    Status = DevelopmentTask.Status
    counts = DevelopmentTask.objects.aggregate(
        total=Count("id"),
        completed=Count("id", filter=Q(status=Status.COMPLETED)),
        failed=Count("id", filter=Q(status=Status.FAILED)),
        in_progress=Count("id", filter=Q(status=Status.IN_PROGRESS)),
        validated=Count("id", filter=Q(attempts__gte=1)),
        first_attempt=Count("id", filter=Q(status=Status.COMPLETED, attempts=1)),
        attempts_avg=Avg("attempts", filter=Q(attempts__gte=1)),
        duration_avg=Avg(
            F("completed_at") - F("started_at"),
            filter=Q(status=Status.COMPLETED, started_at__isnull=False, completed_at__isnull=False),
        ),
    )
    # Model time only: validation steps take time without producing tokens.
    tokens = TaskStep.objects.filter(tokens_out__gt=0).aggregate(out=Sum("tokens_out"), ms=Sum("duration_ms"))
    duration: timedelta | None = counts["duration_avg"]
    completion_rate = _rate(counts["completed"], counts["total"])
    first_attempt_pass_rate = _rate(counts["first_attempt"], counts["validated"])
    return {
        "total_tasks": counts["total"],
        "completed_tasks": counts["completed"],
        "failed_tasks": counts["failed"],
        "in_progress_tasks": counts["in_progress"],
        "completion_rate": completion_rate,
        "average_completion_hours": round(duration.total_seconds() / 3600, 4) if duration else 0.0,
        "productivity_score": round(0.7 * completion_rate + 0.3 * first_attempt_pass_rate, 1),
        "tokens_per_second": round((tokens["out"] or 0) * 1000 / tokens["ms"], 2) if tokens["ms"] else 0.0,
        "first_attempt_pass_rate": first_attempt_pass_rate,
        "average_attempts": round(float(counts["attempts_avg"] or 0), 2),
    }


def task_last_seq(*, task: DevelopmentTask) -> int:
    return TaskEvent.objects.filter(task=task).aggregate(m=Max("seq"))["m"] or 0
