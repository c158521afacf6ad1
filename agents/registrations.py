"""What agents adds to every tenant (``tenants.registry``), registered by ``AgentsConfig.ready``:
the projects quota and the Welcome project of a new tenant."""

from __future__ import annotations

from pathlib import Path

from agents.models import Project
from agents.services import project_create
from leanvibe.platform.checks import PlatformCheck, platform_check_register
from tenants.models import Tenant
from tenants.plans import Resource
from tenants.registry import (
    NewTenant,
    Phase,
    ProvisioningStep,
    QuotaResource,
    provisioning_step_register,
    quota_resource_register,
    storage_measure_register,
)


def projects_count(tenant: Tenant) -> int:
    """Archived projects count against the plan; deleted ones do not."""
    return Project.objects.exclude(status=Project.Status.DELETED).count()


def welcome_project_create(new: NewTenant) -> None:
    project_create(
        tenant=new.tenant, name="Welcome", description="Your first project. Rename it or start another."
    )


def sandbox_platform_check() -> str:
    """``check_platform``: bubblewrap runs a trivial program in the sandbox (agent runs refuse to
    start without it)."""
    from agents.sandbox import SandboxUnavailable, default_bwrap_path, sandbox_check

    try:
        sandbox_check()
    except SandboxUnavailable as exc:
        raise RuntimeError(exc.reason) from exc
    return f"bubblewrap works ({default_bwrap_path()})"


def inference_platform_check() -> str:
    """``check_platform``: the default agent profile's backend answers a one-token completion
    (the model folder loads, or the inference server is reachable and has its model)."""
    from django.conf import settings

    from agents.inference.factory import BackendUnavailable, backend_for_agent
    from agents.models import Agent

    profile = Agent(
        name="check", backend=settings.AGENTS_BACKEND, model=settings.AGENTS_MODEL_PATH, base_url=""
    )
    try:
        backend = backend_for_agent(profile)
    except BackendUnavailable as exc:
        raise RuntimeError(str(exc)) from exc
    completion = backend.complete([{"role": "user", "content": "Say OK."}], max_tokens=1)
    where = settings.AGENTS_INFERENCE_URL if profile.backend == "http" else profile.model
    return f"{profile.backend} backend ({where}) answered in {completion.duration_s * 1000:.0f} ms"


def workspace_bytes(tenant: Tenant) -> int:
    """The tenant's agent workspaces on disk (generated files; ``AGENTS_WORKSPACE_ROOT/<schema>``),
    counted in its storage quota beside the schema's tables."""
    from django.conf import settings

    root = Path(settings.AGENTS_WORKSPACE_ROOT) / tenant.schema_name
    if not root.is_dir():
        return 0
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def register() -> None:
    storage_measure_register("agents.workspaces", workspace_bytes)
    platform_check_register(PlatformCheck(name="agent sandbox", run=sandbox_platform_check, order=80))
    platform_check_register(PlatformCheck(name="inference backend", run=inference_platform_check, order=85))
    quota_resource_register(
        QuotaResource(
            name=Resource.PROJECTS,
            label=str(Resource.PROJECTS.label),
            count=projects_count,
            order=10,
            noun=("Project", "projects"),
        )
    )
    provisioning_step_register(
        ProvisioningStep(
            name="agents.welcome_project", order=20, run=welcome_project_create, phase=Phase.IN_TRANSACTION
        )
    )
