"""Reads of tenants and their usage."""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models import QuerySet

from tenants.models import Domain, Tenant
from tenants.registry import quoted_schema, tenant_contacts


def tenant_get_by_domain(hostname: str) -> Tenant | None:
    domain = Domain.objects.select_related("tenant").filter(domain=hostname).first()
    return domain.tenant if domain else None


def tenant_get_by_id(tenant_id: uuid.UUID) -> Tenant | None:
    return Tenant.objects.filter(id=tenant_id).first()


def tenant_get_by_subdomain(subdomain: str) -> Tenant | None:
    return Tenant.objects.filter(schema_name=subdomain).first()


def tenant_get_by_ref(ref: str) -> Tenant | None:
    """A tenant named the way operators name one on the command line: its id or its subdomain."""
    try:
        return tenant_get_by_id(uuid.UUID(ref))
    except ValueError:
        return tenant_get_by_subdomain(ref.lower())


def tenant_list(*, status: str | None = None, plan: str | None = None) -> QuerySet[Tenant]:
    qs = Tenant.objects.all()
    if status:
        qs = qs.filter(status=status)
    if plan:
        qs = qs.filter(plan=plan)
    return qs


def tenant_user_count(tenant: Tenant) -> int:
    """Active members in the tenant's schema, read without switching the connection."""
    return tenant_user_counts([tenant]).get(tenant.id, 0)


def tenant_user_counts(tenants: list[Tenant]) -> dict[uuid.UUID, int]:
    """Active members of many tenants in one round trip (the admin console's list), counted by
    the query the members' app registered (``TenantContacts.member_count_sql``)."""
    if not tenants:
        return {}
    count_sql = tenant_contacts().member_count_sql
    parts = [f"SELECT %s::uuid, ({count_sql(quoted_schema(t))})" for t in tenants]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), [str(t.id) for t in tenants])
        return {row[0]: int(row[1]) for row in cursor.fetchall()}
