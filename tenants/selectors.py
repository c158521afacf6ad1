"""Reads of tenants and their usage."""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models import QuerySet

from tenants.models import Domain, Tenant


def tenant_get_by_domain(hostname: str) -> Tenant | None:
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None


def tenant_get_by_id(tenant_id: uuid.UUID) -> Tenant | None:
    return Tenant.objects.filter(id=tenant_id).first()


def tenant_get_by_subdomain(subdomain: str) -> Tenant | None:
    return Tenant.objects.filter(schema_name=subdomain).first()


def tenant_list(*, status: str | None = None, plan: str | None = None) -> QuerySet[Tenant]:
    qs = Tenant.objects.all()
    if status:
        qs = qs.filter(status=status)
    if plan:
        qs = qs.filter(plan=plan)
    return qs


def tenant_user_count(tenant: Tenant) -> int:
    """Active members in the tenant's schema, read without switching the connection."""
    table = f"{connection.ops.quote_name(tenant.schema_name)}.accounts_user"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE is_active")  # noqa: S608 - quoted
        return int(cursor.fetchone()[0])


def tenant_user_counts(tenants: list[Tenant]) -> dict[uuid.UUID, int]:
    """User counts of many tenants in one round trip (the admin console's list)."""
    if not tenants:
        return {}
    parts = [
        f"SELECT %s::uuid, count(*) FROM {connection.ops.quote_name(t.schema_name)}.accounts_user "  # noqa: S608
        "WHERE is_active"
        for t in tenants
    ]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), [str(t.id) for t in tenants])
        return {row[0]: int(row[1]) for row in cursor.fetchall()}


def tenant_storage_bytes(tenant: Tenant) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            [tenant.schema_name],
        )
        return int(cursor.fetchone()[0])
