"""Per-tenant usage against the plan catalogue, and the quota checks that enforce it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leanvibe import redis as lv_redis
from leanvibe.errors import QuotaExceeded
from tenants.models import Tenant
from tenants.plans import Resource, limits_for, spec_for
from tenants.registry import QuotaResource, Unit, quota_resource, quota_resource_register, quota_resources

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
    """Current use and limit of every registered quota resource. Must run in the tenant's schema."""
    limits = limits_for(tenant.plan)
    return [
        ResourceUsage(r.name, r.label, r.count(tenant), limits.limit_for(r.name)) for r in quota_resources()
    ]


def quota_reserve(*, tenant: Tenant, resource: str, amount: int = 1) -> None:
    """Raise ``QuotaExceeded`` unless ``amount`` more of ``resource`` fit the tenant's plan.

    Locks the tenant row (``SELECT ... FOR UPDATE``) before counting, so the caller's insert,
    made in the same transaction, is counted by the next caller, who waits for the lock: two
    concurrent requests cannot both take the last slot. Call inside a transaction, with the
    tenant's schema as the current one."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("quota_reserve must run inside a transaction: the lock ends with it")
    entry = quota_resource(resource)
    Tenant.objects.select_for_update().filter(pk=tenant.pk).values_list("pk").first()
    limit = spec_for(tenant.plan).hard_limit(entry.name)
    if limit is None:
        return
    if entry.count(tenant) + amount > limit:
        singular, plural = entry.noun
        raise QuotaExceeded(
            f"{singular} limit reached ({limit}). Upgrade to create more {plural}.", limit=limit
        )


def storage_bytes(tenant: Tenant) -> int:
    """Size of every table of the tenant's schema (indexes and TOAST included)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            [tenant.schema_name],
        )
        return int(cursor.fetchone()[0])


def register_platform_resources() -> None:
    """The resources ``tenants`` itself measures (called from ``TenantsConfig.ready``)."""
    quota_resource_register(
        QuotaResource(
            name=Resource.API_CALLS,
            label=str(Resource.API_CALLS.label),
            count=lambda tenant: api_calls_this_month(tenant.id),
            order=30,
            noun=("API call", "API calls"),
        )
    )
    quota_resource_register(
        QuotaResource(
            name=Resource.STORAGE,
            label=str(Resource.STORAGE.label),
            count=storage_bytes,
            order=40,
            unit=Unit.BYTES,
            noun=("Storage", "storage"),
        )
    )
