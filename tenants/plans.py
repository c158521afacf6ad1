"""The plan catalogue: one place in code that says what each plan allows."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Plan(models.TextChoices):
    STARTER = "starter", "Starter"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"


class Resource(models.TextChoices):
    PROJECTS = "projects", "Projects"
    USERS = "users", "Users"
    API_CALLS = "api_calls", "API calls this month"
    STORAGE = "storage_bytes", "Storage"


GB = 1024**3


@dataclass(frozen=True)
class PlanLimits:
    """Limits of one plan; ``None`` means unlimited."""

    projects: int | None
    users: int | None
    api_calls: int | None
    storage_bytes: int | None

    def limit_for(self, resource: Resource | str) -> int | None:
        value: int | None = getattr(self, str(resource), None)  # unknown to the catalogue: no limit
        return value


CATALOGUE: dict[str, PlanLimits] = {
    Plan.STARTER: PlanLimits(projects=5, users=3, api_calls=10_000, storage_bytes=1 * GB),
    Plan.PROFESSIONAL: PlanLimits(projects=50, users=25, api_calls=100_000, storage_bytes=10 * GB),
    Plan.ENTERPRISE: PlanLimits(projects=None, users=None, api_calls=None, storage_bytes=None),
}


def limits_for(plan: str) -> PlanLimits:
    return CATALOGUE[plan]
