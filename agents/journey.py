"""The journey steps agents does (``tenants.journey``): registered by ``AgentsConfig.ready``,
reported by the services when they happen.

Level 5 "AI Developer":
- ``agent_task_passed``: a development task completed, which the pipeline only does once its
  validation (the generated tests, run by pytest in the sandbox) passed: ticked by the
  pipeline's end (``pipeline._finish``) in the transaction that marks the task completed;
  computed from completed tasks with a passed (``completed``) validation step. Tasks are never
  deleted, so the records keep the step (history).
- ``agent_code_downloaded``: a completed task's code downloaded (the API's ``download`` or the
  task page's): ticked by the download. Nothing records a download besides the tick, so the
  records compute nothing for it (``history=False``): ``journey_check`` never counts it as a
  disagreement and the backfill cannot tick downloads made before the journey existed.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Min

from agents.models import DevelopmentTask, Project, TaskStep
from tenants.journey.registry import JourneyStep, journey_step_register
from tenants.journey.services import journey_step_known_done, journey_step_report
from tenants.models import Tenant

PROJECT_CREATED = "project_created"
AGENT_TASK_PASSED = "agent_task_passed"
AGENT_CODE_DOWNLOADED = "agent_code_downloaded"


def second_project_created_at(tenant: Tenant) -> datetime | None:
    """When a project besides the Welcome one (the first, made at sign-up) was created; a
    project deleted since still counts: the step is that one was made."""
    times = list(Project.objects.order_by("created_at", "pk").values_list("created_at", flat=True)[:2])
    return times[1] if len(times) == 2 else None


def project_created_report(tenant: Tenant) -> None:
    """After a project is saved (in its transaction): the second project of the tenant ticks
    the step. A count only until this process has seen the step done; then nothing."""
    if journey_step_known_done(tenant=tenant, step=PROJECT_CREATED):
        return
    if Project.objects.count() >= 2:
        journey_step_report(tenant=tenant, step=PROJECT_CREATED)


# --- level 5 -----------------------------------------------------------------------------------
def agent_task_passed_at(tenant: Tenant) -> datetime | None:
    """When the first task completed with a passed validation (its tests ran in the sandbox)."""
    passed = TaskStep.objects.filter(name="validation", status=TaskStep.Status.COMPLETED).values("task_id")
    first: datetime | None = DevelopmentTask.objects.filter(
        status=DevelopmentTask.Status.COMPLETED, id__in=passed
    ).aggregate(first=Min("completed_at"))["first"]
    return first


def agent_task_passed_report(*, tenant: Tenant, task: DevelopmentTask) -> None:
    """The pipeline marked ``task`` completed (its validation passed), in the transaction doing
    it; a step already done costs nothing."""
    if task.status != DevelopmentTask.Status.COMPLETED:
        return
    journey_step_report(tenant=tenant, step=AGENT_TASK_PASSED, at=task.completed_at)


def agent_code_downloaded_at(tenant: Tenant) -> datetime | None:
    """No record of downloads is kept but the tick itself (``history=False``)."""
    return None


def agent_code_downloaded_report(*, tenant: Tenant, task: DevelopmentTask) -> None:
    """``task``'s code was just served as a download (completed tasks only)."""
    if task.status != DevelopmentTask.Status.COMPLETED:
        return
    journey_step_report(tenant=tenant, step=AGENT_CODE_DOWNLOADED)


def register() -> None:
    for step in (
        JourneyStep(
            id=PROJECT_CREATED,
            level=1,
            title="Create a project of your own",
            help_url="/projects/",
            done_at=second_project_created_at,
            order=20,
        ),
        JourneyStep(
            id=AGENT_TASK_PASSED,
            level=5,
            title="An agent task completes with its tests passing in the sandbox",
            help_url="/tasks/new/",
            done_at=agent_task_passed_at,
            order=10,
        ),
        JourneyStep(
            id=AGENT_CODE_DOWNLOADED,
            level=5,
            title="Its code downloaded",
            help_url="/tasks/",
            done_at=agent_code_downloaded_at,
            order=20,
            history=False,
        ),
    ):
        journey_step_register(step)
