"""The journey's levels (fixed here) and its steps (registered by the features that do them).

A step is registered from an app's ``AppConfig.ready()`` with the level it belongs to and
``done_at(tenant)``: when the step was done according to the platform's own records, or None.
It runs with the tenant's schema as the current one and is what ``journey_backfill`` and
``journey_check`` compute; the feature also *reports* the step when it happens
(``tenants.journey.services.journey_step_report``), which is what ticks it live. The journey
imports no feature: billing and agents register and report, the same plug-in pattern as the
quota resources of ``tenants.registry``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from tenants.registry import (
    NewTenant,
    Phase,
    ProvisioningStep,
    TenantPublicRows,
    provisioning_step_register,
    tenant_public_rows_register,
)

if TYPE_CHECKING:
    from tenants.models import Tenant

ORGANISATION_CREATED = "organisation_created"


@dataclass(frozen=True)
class Level:
    number: int
    name: str
    badge: str


LEVELS: tuple[Level, ...] = (
    Level(1, "SaaS Builder", "🏗️"),
    Level(2, "Tenant Architect", "🏛️"),
    Level(3, "Security Expert", "🔐"),
    Level(4, "Revenue Engineer", "💰"),
    Level(5, "AI Developer", "🤖"),
    Level(6, "Enterprise Master", "🏆"),
)
LEVEL_NUMBERS = {level.number for level in LEVELS}


@dataclass(frozen=True)
class JourneyStep:
    """``id`` is part of the API (stable); ``help_url`` is a path on the tenant's site where the
    step is done; ``order`` sorts the steps of a level. ``history`` is False when the records
    ``done_at`` reads do not last (expired tokens are purged): ``journey_check`` then does not
    count a ticked step the records no longer show as a disagreement."""

    id: str
    level: int
    title: str
    help_url: str
    done_at: Callable[[Tenant], datetime | None]
    order: int = 100
    history: bool = True


class JourneyRegistryError(RuntimeError):
    pass


_steps: dict[str, JourneyStep] = {}


def journey_step_register(step: JourneyStep) -> None:
    if step.level not in LEVEL_NUMBERS:
        raise JourneyRegistryError(f"journey step {step.id!r}: no level {step.level}")
    existing = _steps.get(step.id)
    if existing is not None and existing != step:
        raise JourneyRegistryError(f"journey step {step.id!r} is already registered")
    _steps[step.id] = step


def journey_step(step_id: str) -> JourneyStep:
    try:
        return _steps[step_id]
    except KeyError:
        raise JourneyRegistryError(f"no journey step {step_id!r} is registered") from None


def journey_steps(level: int | None = None) -> list[JourneyStep]:
    """Registered steps by level, then order."""
    steps = (s for s in _steps.values() if level is None or s.level == level)
    return sorted(steps, key=lambda s: (s.level, s.order, s.id))


def _organisation_created(tenant: Tenant) -> datetime | None:
    return tenant.created_at


def _organisation_created_report(new: NewTenant) -> None:
    from tenants.journey.services import journey_step_report

    journey_step_report(tenant=new.tenant, step=ORGANISATION_CREATED, at=new.tenant.created_at)


def register_platform_steps() -> None:
    """The one step the tenants app itself knows: the organisation exists (ticked by
    provisioning, in its transaction); and the journey's rows move with their tenant
    (``tenant_export`` / ``tenant_import``: a renamed copy keeps the original's progress, as it
    keeps its data)."""
    from tenants.journey.models import LevelUnlocked, StepDone

    tenant_public_rows_register(TenantPublicRows(model=StepDone, tenant_field="tenant", order=50))
    tenant_public_rows_register(TenantPublicRows(model=LevelUnlocked, tenant_field="tenant", order=51))
    provisioning_step_register(
        ProvisioningStep(
            name="journey.organisation_created",
            order=90,
            run=_organisation_created_report,
            phase=Phase.IN_TRANSACTION,
        )
    )
    journey_step_register(
        JourneyStep(
            id=ORGANISATION_CREATED,
            level=1,
            title="Create your organisation",
            help_url="/",
            done_at=_organisation_created,
            order=10,
        )
    )
