"""What agents adds to a data export (``accounts.exports.registry``), registered by
``AgentsConfig.ready``: projects, tasks with their steps, artifacts and events, the agent
profiles, and the tenant's workspace files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from accounts.exports.registry import ExportArchive, ExportPart, export_part_register
from agents.models import Agent, DevelopmentTask, Project
from tenants.models import Tenant


def projects_write(tenant: Tenant, archive: ExportArchive) -> None:
    projects = Project.objects.order_by("created_at").values(
        "id", "name", "description", "status", "created_at", "updated_at"
    )
    archive.json("projects.json", list(projects))


def agents_write(tenant: Tenant, archive: ExportArchive) -> None:
    # Not base_url: a server's URL may carry credentials.
    profiles = Agent.objects.order_by("name").values(
        "name", "kind", "backend", "model", "parameters", "created_at"
    )
    archive.json("agents.json", list(profiles))


def _task(task: DevelopmentTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "project_id": task.project_id,
        "title": task.title,
        "description": task.description,
        "requirements": task.requirements,
        "priority": task.priority,
        "status": task.status,
        "progress": task.progress,
        "created_by": task.created_by.email if task.created_by else None,
        "agent": task.agent.name,
        "created_at": task.created_at,
        "started_at": task.started_at,
        "completed_at": task.completed_at,
        "error": task.error,
        "attempts": task.attempts,
        "runs": task.runs,
        "quality": task.quality,
        "steps": list(
            task.steps.order_by("started_at", "id").values(
                "name",
                "status",
                "attempt",
                "prompt",
                "output",
                "tokens_in",
                "tokens_out",
                "duration_ms",
                "error",
                "started_at",
                "finished_at",
            )
        ),
        "artifacts": list(
            task.artifacts.order_by("path").values("path", "kind", "content", "size", "updated_at")
        ),
        "events": list(task.events.order_by("seq").values("seq", "type", "data", "ts")),
    }


def tasks_write(tenant: Tenant, archive: ExportArchive) -> None:
    tasks = DevelopmentTask.objects.select_related("created_by", "agent").order_by("created_at", "id")
    archive.json("tasks.json", [_task(task) for task in tasks.iterator(chunk_size=200)])


def workspace_write(tenant: Tenant, archive: ExportArchive) -> None:
    """``workspace/<task id>/…``: the generated files on disk (symbolic links left out)."""
    root = Path(settings.AGENTS_WORKSPACE_ROOT) / tenant.schema_name
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            archive.file(f"workspace/{path.relative_to(root).as_posix()}", path)


def register() -> None:
    for part in (
        ExportPart("projects", projects_write, order=40),
        ExportPart("agents", agents_write, order=45),
        ExportPart("tasks", tasks_write, order=50),
        ExportPart("workspace files", workspace_write, order=60),
    ):
        export_part_register(part)
