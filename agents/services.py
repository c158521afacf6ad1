"""Writes of projects. Run in the tenant's schema; ``quota_reserve`` locks the tenant row while
counting against the plan, so two concurrent creations cannot both take the last slot."""

from __future__ import annotations

import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agents import tasks
from agents.events import task_event_append
from agents.journey import project_created_report
from agents.models import Agent, DevelopmentTask, Project
from leanvibe.errors import DomainError
from tenants.plans import Resource
from tenants.usage import quota_reserve

if TYPE_CHECKING:
    from accounts.models import User
    from tenants.models import Tenant


def _name_taken(name: str) -> DomainError:
    return DomainError("project_exists", f"Project '{name}' already exists in your organization", status=409)


def _check_name_free(name: str, *, exclude_id: uuid.UUID | None = None) -> None:
    qs = Project.objects.exclude(status=Project.Status.DELETED).filter(name__iexact=name)
    if exclude_id is not None:
        qs = qs.exclude(id=exclude_id)
    if qs.exists():
        raise _name_taken(name)


def project_create(*, tenant: Tenant, name: str, description: str = "") -> Project:
    project = Project(name=name.strip(), description=description)
    project.full_clean(validate_constraints=False)
    with transaction.atomic():
        quota_reserve(tenant=tenant, resource=Resource.PROJECTS)
        _check_name_free(project.name)
        try:
            with transaction.atomic():
                project.save()
        except IntegrityError as exc:
            raise _name_taken(project.name) from exc
        project_created_report(tenant)
    return project


def project_update(
    *,
    project: Project,
    name: str | None = None,
    description: str | None = None,
    status: str | None = None,
) -> Project:
    if name is not None:
        project.name = name.strip()
    if description is not None:
        project.description = description
    if status is not None:
        if status not in (Project.Status.ACTIVE, Project.Status.ARCHIVED):
            raise DomainError("invalid_status", "Status must be 'active' or 'archived'.", status=400)
        project.status = status
    project.full_clean(validate_constraints=False)
    with transaction.atomic():
        _check_name_free(project.name, exclude_id=project.id)
        try:
            with transaction.atomic():
                project.save()
        except IntegrityError as exc:
            raise _name_taken(project.name) from exc
    return project


def project_delete(*, project: Project) -> None:
    """Soft delete: the row stays, the name is free again."""
    project.status = Project.Status.DELETED
    project.save(update_fields=["status", "updated_at"])


# --- agents and development tasks -----------------------------------------------------------

DEFAULT_AGENT_NAME = "Coder"
REQUIREMENTS_MAX = 50
REQUIREMENT_CHARS = 500


def agent_default_get() -> Agent:
    """The tenant's default agent profile, made on first use from ``AGENTS_BACKEND`` and
    ``AGENTS_MODEL_PATH``."""
    agent, _ = Agent.objects.get_or_create(
        name=DEFAULT_AGENT_NAME,
        defaults={
            "kind": Agent.Kind.L3_CODER,
            "backend": settings.AGENTS_BACKEND,
            "model": str(settings.AGENTS_MODEL_PATH),
            "parameters": {"max_tokens": 1024, "temperature": 0.0},
        },
    )
    return agent


def agent_create(
    *,
    name: str,
    model: str,
    backend: str = Agent.Backend.MLX,
    base_url: str = "",
    parameters: dict[str, Any] | None = None,
) -> Agent:
    parameters = dict(parameters or {})
    max_tokens = parameters.get("max_tokens", 1024)
    temperature = parameters.get("temperature", 0.0)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 32_768:
        raise DomainError("invalid_parameters", "max_tokens must be an integer from 1 to 32768.", status=400)
    if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        raise DomainError("invalid_parameters", "temperature must be a number from 0 to 2.", status=400)
    agent = Agent(
        name=name.strip(),
        backend=backend,
        model=model,
        base_url=base_url,
        parameters={"max_tokens": max_tokens, "temperature": float(temperature)},
    )
    agent.full_clean()
    agent.save()
    return agent


def _dispatch_after_commit(tenant: Tenant, task: DevelopmentTask) -> None:
    transaction.on_commit(partial(tasks.agent_task_run.delay, str(tenant.id), str(task.id)))


def task_create(
    *,
    tenant: Tenant,
    title: str,
    description: str,
    requirements: list[str] | None = None,
    priority: str = DevelopmentTask.Priority.MEDIUM,
    project: Project | None = None,
    created_by: User | None = None,
    agent: Agent | None = None,
    start: bool = True,
) -> DevelopmentTask:
    """A new development task, ``queued`` (its run is sent to the worker after commit) or, with
    ``start=False``, ``pending`` until ``task_start``."""
    requirements = list(requirements or [])
    if len(requirements) > REQUIREMENTS_MAX or not all(
        isinstance(r, str) and r.strip() and len(r) <= REQUIREMENT_CHARS for r in requirements
    ):
        raise DomainError(
            "invalid_requirements",
            f"requirements must be at most {REQUIREMENTS_MAX} non-empty texts "
            f"of at most {REQUIREMENT_CHARS} characters.",
            status=400,
        )
    if project is not None and project.status == Project.Status.DELETED:
        raise DomainError("project_not_found", "The project does not exist.", status=404)
    task = DevelopmentTask(
        title=title.strip(),
        description=description.strip(),
        requirements=[r.strip() for r in requirements],
        priority=priority,
        project=project,
        created_by=created_by,
        agent=agent or agent_default_get(),
        status=DevelopmentTask.Status.QUEUED if start else DevelopmentTask.Status.PENDING,
    )
    try:
        task.full_clean()
    except ValidationError as exc:
        raise DomainError("invalid_task", "; ".join(exc.messages), status=400) from exc
    with transaction.atomic():
        task.save()
        task_event_append(task=task, type="status", data={"status": task.status})
        if start:
            _dispatch_after_commit(tenant, task)
    return task


def task_start(*, tenant: Tenant, task: DevelopmentTask) -> DevelopmentTask:
    """Queue a pending task."""
    with transaction.atomic():
        updated = DevelopmentTask.objects.filter(id=task.id, status=DevelopmentTask.Status.PENDING).update(
            status=DevelopmentTask.Status.QUEUED
        )
        task.refresh_from_db()
        if not updated:
            raise DomainError("task_not_pending", "Only a pending task can be started.", status=409)
        task_event_append(task=task, type="status", data={"status": task.status})
        _dispatch_after_commit(tenant, task)
    return task


def task_cancel_allowed(*, task: DevelopmentTask, user: Any) -> bool:
    """Who may cancel a task: the member who asked for it, and admins and owners; another member
    may not stop a colleague's work."""
    from accounts.models import Role
    from accounts.permissions import has_role

    return (task.created_by_id is not None and task.created_by_id == getattr(user, "pk", None)) or has_role(
        user, Role.ADMIN
    )


def task_cancel(*, task: DevelopmentTask, by: Any = None) -> DevelopmentTask:
    """Cancel a task: one not started yet at once; one in progress by asking its worker, which
    stops within seconds (``cancel_requested``). A finished task is left as it is. With ``by``
    (the member asking), only its creator or an admin may: 403 ``cancel_not_allowed``."""
    if by is not None and not task_cancel_allowed(task=task, user=by):
        raise DomainError(
            "cancel_not_allowed",
            "Only the member who created the task or an admin can cancel it.",
            status=403,
        )
    with transaction.atomic():
        locked = DevelopmentTask.objects.select_for_update().get(id=task.id)
        if locked.status in (DevelopmentTask.Status.PENDING, DevelopmentTask.Status.QUEUED):
            locked.status = DevelopmentTask.Status.CANCELLED
            locked.cancel_requested = True
            locked.save(update_fields=["status", "cancel_requested"])
            task_event_append(task=locked, type="done", data={"status": locked.status, "error": ""})
        elif locked.status == DevelopmentTask.Status.IN_PROGRESS and not locked.cancel_requested:
            locked.cancel_requested = True
            locked.save(update_fields=["cancel_requested"])
            task_event_append(task=locked, type="cancel_requested", data={})
    task.refresh_from_db()
    return task
