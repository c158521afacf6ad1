"""The per-request copy of each tenant's ``BillingAccount.access``, in Redis, so the guard
(``billing.middleware``) costs one Redis read and no SQL. Written after every change of the
account (after commit) and re-published by the dunning sweep, so a lost Redis comes back."""

from __future__ import annotations

from uuid import UUID

from django.conf import settings

from billing.models import Access
from leanvibe import redis as lv_redis
from tenants.usage import meter_lease_revoke


def access_key(tenant_id: UUID | str) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:billing:access:{tenant_id}"


#: Stored for a tenant with access ``ok`` whose payment failed (the banner shows; nothing is refused).
DUNNING = "dunning"


def access_publish(*, tenant_id: UUID | str, access: str, dunning: bool = False) -> None:
    client = lv_redis.client()
    value = DUNNING if access == Access.OK and dunning else access
    if value == Access.OK:
        client.delete(access_key(tenant_id))
    else:
        client.set(access_key(tenant_id), value)
    # This process's API meter reads the flag again at once; others within their lease (0.1 s).
    meter_lease_revoke(tenant_id)


def access_of(tenant_id: UUID | str) -> str:
    """``ok``, ``dunning``, ``payment_required`` or ``suspended``."""
    value = lv_redis.client().get(access_key(tenant_id))
    if not value:
        return Access.OK
    return value.decode() if isinstance(value, bytes) else str(value)
