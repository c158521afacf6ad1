"""The journey steps agents does (``tenants.journey``): registered by ``AgentsConfig.ready``,
reported by the services when they happen."""

from __future__ import annotations

from datetime import datetime

from agents.models import Project
from tenants.journey.registry import JourneyStep, journey_step_register
from tenants.journey.services import journey_step_known_done, journey_step_report
from tenants.models import Tenant

PROJECT_CREATED = "project_created"


def second_project_created_at(tenant: Tenant) -> datetime | None:
    """When a project besides the Welcome one (the first, made at sign-up) was created; a
    project deleted since still counts: the step is that one was made."""
    times = list(Project.objects.order_by("created_at", "pk").values_list("created_at", flat=True)[:2])
    return times[1] if len(times) == 2 else None


def project_created_report(tenant: Tenant) -> None:
    """After a project is saved (in its transaction): the second project of the tenant ticks
    the step. A count only until the step is done; then a cache read."""
    if journey_step_known_done(tenant=tenant, step=PROJECT_CREATED):
        return
    if Project.objects.count() >= 2:
        journey_step_report(tenant=tenant, step=PROJECT_CREATED)


def register() -> None:
    journey_step_register(
        JourneyStep(
            id=PROJECT_CREATED,
            level=1,
            title="Create a project of your own",
            help_url="/projects/",
            done_at=second_project_created_at,
            order=20,
        )
    )
