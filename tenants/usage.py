"""Per-tenant usage against the plan catalogue, and the quota checks that enforce it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from leanvibe import redis as lv_redis
from leanvibe.errors import QuotaExceeded
from tenants.models import Tenant
from tenants.plans import Resource, limits_for

_MONTH_TTL = 40 * 24 * 3600


def _api_calls_key(tenant_id: uuid.UUID) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:api_calls:{tenant_id}:{timezone.now():%Y%m}"


def api_calls_record(*, tenant_id: uuid.UUID) -> None:
    pipe = lv_redis.client().pipeline(transaction=False)
    key = _api_calls_key(tenant_id)
    pipe.incr(key)
    pipe.expire(key, _MONTH_TTL)
    pipe.execute()


def api_calls_this_month(tenant_id: uuid.UUID) -> int:
    value = lv_redis.client().get(_api_calls_key(tenant_id))
    return int(value) if value else 0


@dataclass(frozen=True)
class ResourceUsage:
    resource: str
    label: str
    used: int
    limit: int | None

    @property
    def percent(self) -> int:
        if not self.limit:
            return 0
        return min(100, round(100 * self.used / self.limit))


def usage_for(tenant: Tenant) -> list[ResourceUsage]:
    """Current use and limit per resource. Must run in the tenant's schema."""
    from accounts.models import User
    from agents.models import Project
    from tenants.selectors import tenant_storage_bytes

    limits = limits_for(tenant.plan)
    used = {
        Resource.PROJECTS: Project.objects.exclude(status=Project.Status.DELETED).count(),
        Resource.USERS: User.objects.filter(is_active=True).count(),
        Resource.API_CALLS: api_calls_this_month(tenant.id),
        Resource.STORAGE: tenant_storage_bytes(tenant),
    }
    return [
        ResourceUsage(str(resource), str(resource.label), used[resource], limits.limit_for(resource))
        for resource in Resource
    ]


_NOUNS = {Resource.PROJECTS: ("Project", "projects"), Resource.USERS: ("User", "users")}


def quota_check(*, tenant: Tenant, resource: Resource, current: int) -> None:
    """Raise ``QuotaExceeded`` if adding one more ``resource`` would pass the plan's limit."""
    limit = limits_for(tenant.plan).limit_for(resource)
    if limit is not None and current >= limit:
        singular, plural = _NOUNS[resource]
        raise QuotaExceeded(
            f"{singular} limit reached ({limit}). Upgrade to create more {plural}.", limit=limit
        )
