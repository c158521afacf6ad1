"""Writes of projects. Run in the tenant's schema; ``quota_reserve`` locks the tenant row while
counting against the plan, so two concurrent creations cannot both take the last slot."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

from agents.models import Project
from leanvibe.errors import DomainError
from tenants.plans import Resource
from tenants.usage import quota_reserve

if TYPE_CHECKING:
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
