"""``quota_reserve``: one lock-count-check for every quota, counted through the registry; two
requests racing for the last slot never both get it (20 rounds each, real threads, real
connections)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context

from accounts.models import Invitation, User
from accounts.services.invitations import invitation_create, invitation_revoke
from agents.models import Project
from agents.services import project_create, project_delete
from leanvibe.errors import QuotaExceeded
from tenants.models import Tenant
from tenants.plans import Resource
from tenants.registry import (
    NewTenant,
    Phase,
    ProvisioningStep,
    QuotaResource,
    RegistryError,
    provisioning_step_register,
    provisioning_step_unregister,
    provisioning_steps,
    quota_resource,
    quota_resource_register,
    quota_resources,
)
from tenants.services import tenant_provision
from tenants.usage import quota_reserve, usage_for

ROUNDS = 20


def test_the_apps_register_their_resources_and_steps():
    assert [r.name for r in quota_resources()] == ["projects", "users", "api_calls", "storage_bytes"]
    assert [s.name for s in provisioning_steps(Phase.IN_TRANSACTION)] == [
        "accounts.owner",
        "agents.welcome_project",
        "journey.organisation_created",
    ]


@pytest.mark.django_db
def test_provisioning_runs_the_steps_in_order_in_the_new_schema_and_after_commit_ones_later(
    django_capture_on_commit_callbacks: Any,
) -> None:
    seen: list[tuple[str, str, int, bool]] = []

    def record(label: str) -> Callable[[NewTenant], None]:
        def run(new: NewTenant) -> None:
            seen.append((label, connection.schema_name, User.objects.count(), new.owner_email_verified))  # type: ignore[attr-defined]

        return run

    steps = [
        ProvisioningStep(name="test.first", order=5, run=record("first")),
        ProvisioningStep(name="test.between", order=15, run=record("between")),
        ProvisioningStep(name="test.later", order=1, run=record("later"), phase=Phase.AFTER_COMMIT),
    ]
    for step in steps:
        provisioning_step_register(step)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            tenant = tenant_provision(
                organization_name="Steps", billing_email="o@steps.test", admin_email="o@steps.test"
            ).tenant
            # Before the owner (order 10) and between the owner and the Welcome project (20).
            assert seen == [("first", "steps", 0, True), ("between", "steps", 1, True)]
        for callback in callbacks:
            callback()
    finally:
        for step in steps:
            provisioning_step_unregister(step.name)
    assert seen[2:] == [("later", tenant.schema_name, 1, True)]
    assert connection.schema_name == "public"  # type: ignore[attr-defined]


def test_a_name_cannot_be_registered_twice_with_another_meaning():
    projects = quota_resource("projects")
    quota_resource_register(projects)  # the same registration again (a second ready()) is harmless
    with pytest.raises(RegistryError):
        quota_resource_register(QuotaResource(name="projects", label="Other", count=lambda tenant: 0))
    with pytest.raises(RegistryError):
        quota_resource("no_such_resource")


def test_quota_reserve_refuses_to_run_outside_a_transaction():
    # (No database here: the test itself would run inside pytest-django's transaction.)
    with pytest.raises(RuntimeError, match="inside a transaction"):
        quota_reserve(tenant=Tenant(schema_name="nowhere"), resource=Resource.PROJECTS)


@pytest.mark.django_db
def test_quota_reserve_counts_through_the_registry(tenant_a):
    tenant = tenant_a.tenant
    with tenant_context(tenant), transaction.atomic():
        quota_reserve(tenant=tenant, resource=Resource.PROJECTS, amount=4)  # Welcome + 4 = 5
        with pytest.raises(QuotaExceeded) as refused:
            quota_reserve(tenant=tenant, resource=Resource.PROJECTS, amount=5)
        assert str(refused.value.detail) == "Project limit reached (5). Upgrade to create more projects."
        quota_reserve(tenant=tenant, resource=Resource.USERS, amount=2)  # owner + 2 = 3 seats
        with pytest.raises(QuotaExceeded, match="User limit reached"):
            quota_reserve(tenant=tenant, resource=Resource.USERS, amount=3)
        usage = {u.resource: (u.used, u.limit) for u in usage_for(tenant)}
    assert usage["projects"] == (1, 5) and usage["users"] == (1, 3)


def _contender(attempt: Callable[[], None], barrier: threading.Barrier, outcomes: list[str]) -> None:
    """One side of a race, in its own thread with its own database connection."""
    try:
        barrier.wait(5)
        attempt()
        outcomes.append("won")
    except QuotaExceeded:
        outcomes.append("refused")
    except Exception as exc:
        outcomes.append(f"error: {exc!r}")
    finally:
        connection.close()


def _race(attempt: Callable[[], None], rounds: int, after_round: Callable[[], None]) -> list[list[str]]:
    """Run ``attempt`` in two threads started together, ``rounds`` times; the outcomes of each."""
    results: list[list[str]] = []
    for _ in range(rounds):
        barrier = threading.Barrier(2)
        outcomes: list[str] = []  # list.append is atomic under the GIL
        threads = [threading.Thread(target=_contender, args=(attempt, barrier, outcomes)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        results.append(sorted(outcomes))
        after_round()
    return results


@pytest.mark.django_db(transaction=True)
def test_two_requests_for_the_last_project_never_both_win(dropped_afterwards: None) -> None:
    tenant = tenant_provision(
        organization_name="Project Race", billing_email="o@prace.test", admin_email="o@prace.test"
    ).tenant
    with tenant_context(tenant):
        for n in range(3):  # with the Welcome project: 4 of 5
            project_create(tenant=tenant, name=f"Existing {n}")
    counter = iter(range(10_000))

    def attempt() -> None:
        with tenant_context(Tenant.objects.get(pk=tenant.pk)):
            project_create(tenant=tenant, name=f"Racer {next(counter)}")

    def free_the_slot() -> None:
        with tenant_context(tenant):
            assert Project.objects.exclude(status=Project.Status.DELETED).count() == 5
            for project in Project.objects.filter(name__startswith="Racer").exclude(
                status=Project.Status.DELETED
            ):
                project_delete(project=project)

    results = _race(attempt, ROUNDS, free_the_slot)
    assert results == [["refused", "won"]] * ROUNDS


@pytest.mark.django_db(transaction=True)
def test_two_invitations_for_the_last_seat_never_both_win(dropped_afterwards: None, settings: Any) -> None:
    settings.INVITATION_RATE = settings.INVITATION_TENANT_RATE = "1000/hour"
    tenant = tenant_provision(
        organization_name="Seat Race", billing_email="o@srace.test", admin_email="o@srace.test"
    ).tenant
    with tenant_context(tenant):
        owner = User.objects.get()
        invitation_create(tenant=tenant, actor=owner, email="held@srace.test")  # 2 of 3 seats
    counter = iter(range(10_000))

    def attempt() -> None:
        with tenant_context(Tenant.objects.get(pk=tenant.pk)):
            invitation_create(tenant=tenant, actor=owner, email=f"racer{next(counter)}@srace.test")

    def free_the_seat() -> None:
        with tenant_context(tenant):
            pending = Invitation.objects.filter(
                email__startswith="racer", accepted_at__isnull=True, revoked_at__isnull=True
            )
            assert pending.count() == 1
            for invitation in pending:
                invitation_revoke(actor=owner, invitation=invitation)

    results = _race(attempt, ROUNDS, free_the_seat)
    assert results == [["refused", "won"]] * ROUNDS
