"""What agents adds to every tenant (``tenants.registry``), registered by ``AgentsConfig.ready``:
the projects quota and the Welcome project of a new tenant."""

from __future__ import annotations

from agents.models import Project
from agents.services import project_create
from tenants.models import Tenant
from tenants.plans import Resource
from tenants.registry import (
    NewTenant,
    Phase,
    ProvisioningStep,
    QuotaResource,
    provisioning_step_register,
    quota_resource_register,
)


def projects_count(tenant: Tenant) -> int:
    """Archived projects count against the plan; deleted ones do not."""
    return Project.objects.exclude(status=Project.Status.DELETED).count()


def welcome_project_create(new: NewTenant) -> None:
    project_create(
        tenant=new.tenant, name="Welcome", description="Your first project. Rename it or start another."
    )


def register() -> None:
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
