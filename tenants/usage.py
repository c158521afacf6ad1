"""Per-tenant usage against the plan catalogue, and the quota checks that enforce it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leanvibe import redis as lv_redis
from leanvibe.errors import DomainError, QuotaExceeded, UsageLimitReached
from tenants.models import Tenant
from tenants.periods import Period, billing_period
from tenants.plans import METERED, Resource, limits_for, spec_for
from tenants.registry import (
    ApiGate,
    QuotaResource,
    Unit,
    api_gates,
    quota_resource,
    quota_resource_register,
    quota_resources,
)

# A period counter outlives its period by a few days (a late read of last month's total).
_PERIOD_TTL = 40 * 24 * 3600
#: Length of a flush window, in seconds: the counters the flush moves to the ledger.
WINDOW_SECONDS = 60
# An unflushed window is kept this long (the flush runs every minute; this bounds the memory a
# stopped beat can cost, and is the age after which an unflushed window is lost).
_WINDOW_TTL = 7 * 24 * 3600

# One round trip per counted event. The count is refused, and nothing is written, when it would
# take the period's total over the hard limit (ARGV[2], -1 for none): a refused request does not
# count, so a blocked tenant's total stays at its limit and nothing refused reaches the ledger.
# Gates (``tenants.registry.ApiGate``) are read first: a closed gate refuses the request and
# nothing is counted.
# KEYS: period counter, window counter, dirty-window set, the tenant's dirty-window set (what
# analytics read, without scanning every tenant's), then one key per gate.
# ARGV: quantity, hard limit, period TTL, window TTL, dirty-set member, 1 if windowed else 0,
# number of gates, then per gate its closing values joined by commas.
# Returns {period total after the call, 1 if counted else 0, closing gate (1-based) or 0, its value}.
_METER_LUA = """
local qty = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local ngates = tonumber(ARGV[7])
for i = 1, ngates do
  local value = redis.call('GET', KEYS[4 + i])
  if value and string.find(',' .. ARGV[7 + i] .. ',', ',' .. value .. ',', 1, true) then
    return {0, 0, i, value}
  end
end
if qty == 0 then return {0, 1, 0, ''} end
if limit >= 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if used + qty > limit then return {used, 0, 0, ''} end
end
local total = redis.call('INCRBY', KEYS[1], qty)
if total == qty then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if ARGV[6] == '1' and redis.call('INCRBY', KEYS[2], qty) == qty then
  -- a new window: its expiry, and it joins the dirty set (until the flush releases it)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[5])
  redis.call('SADD', KEYS[4], ARGV[5])
end
return {total, 1, 0, ''}
"""


class UnknownMetric(DomainError):
    def __init__(self, metric: str) -> None:
        super().__init__(
            "unknown_metric", f"Unknown metric {metric!r}: one of {', '.join(METERED)}.", status=400
        )


@dataclass(frozen=True)
class MeterResult:
    metric: str
    #: The period's total after the call (unchanged when refused).
    total: int
    counted: bool
    #: The plan's hard limit for the metric (None: never refused).
    hard_limit: int | None
    period: Period
    #: The gate that refused the request, and the value that closed it (then nothing counted).
    closed_by: ApiGate | None = None
    gate_value: str = ""


@lru_cache(maxsize=1)
def _meter_script() -> Any:
    return lv_redis.client().register_script(_METER_LUA)


def period_key(tenant_id: uuid.UUID | str, metric: str, period: Period) -> str:
    return f"{settings.CACHE_KEY_PREFIX}:{metric}:{tenant_id}:{period.key}"


def dirty_windows_key() -> str:
    """The set of ``<tenant id>:<metric>:<window start, epoch seconds>`` with unflushed counts."""
    return f"{settings.CACHE_KEY_PREFIX}:usage-dirty"


def tenant_dirty_windows_key(tenant_id: uuid.UUID | str) -> str:
    """The same, for one tenant (analytics add its unflushed windows)."""
    return f"{settings.CACHE_KEY_PREFIX}:usage-dirty:{tenant_id}"


def window_key(member: str) -> str:
    """The counter of one window, named by its dirty-set member."""
    return f"{settings.CACHE_KEY_PREFIX}:usage-window:{member}"


def window_member(tenant_id: uuid.UUID | str, metric: str, window_start: int) -> str:
    return f"{tenant_id}:{metric}:{window_start}"


def metered_count(
    *,
    tenant: Tenant,
    metric: str,
    quantity: int = 1,
    windowed: bool = True,
    now: datetime | None = None,
    gates: list[tuple[ApiGate, frozenset[str]]] | None = None,
) -> MeterResult:
    """Count ``quantity`` of ``metric`` for the tenant's current period unless that takes it over
    the plan's hard limit; one Redis round trip. ``windowed`` also adds it to the current
    minute's window, which the billing flush moves to the ledger (usage written to the ledger
    directly, ``POST /api/v1/billing/usage``, passes False)."""
    now = now or timezone.now()
    period = billing_period(tenant, now)
    hard_limit = spec_for(tenant.plan).hard_limit(metric)
    member = window_member(tenant.id, metric, int(now.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS)
    gates = gates or []
    keys = [
        period_key(tenant.id, metric, period),
        window_key(member),
        dirty_windows_key(),
        tenant_dirty_windows_key(tenant.id),
    ] + [gate.key(tenant.id) for gate, _ in gates]
    args: list[int | str] = [
        quantity,
        -1 if hard_limit is None else hard_limit,
        _PERIOD_TTL,
        _WINDOW_TTL,
        member,
        1 if windowed else 0,
        len(gates),
    ]
    args += [",".join(sorted(closing)) for _, closing in gates]
    total, counted, gate_index, gate_value = _meter_script()(keys=keys, args=args)
    closed_by = gates[int(gate_index) - 1][0] if gate_index else None
    value = gate_value.decode() if isinstance(gate_value, bytes) else str(gate_value or "")
    return MeterResult(metric, int(total), bool(counted), hard_limit, period, closed_by, value)


def metered_uncount(*, tenant: Tenant, metric: str, quantity: int, period: Period) -> None:
    """Take back a period count whose ledger write did not commit (not windowed usage)."""
    lv_redis.client().decrby(period_key(tenant.id, metric, period), quantity)


def period_usage(tenant: Tenant, metric: str) -> int:
    value = lv_redis.client().get(period_key(tenant.id, metric, billing_period(tenant)))
    return int(value) if value else 0


def _limit_reached(result: MeterResult, now: datetime | None = None) -> UsageLimitReached:
    return UsageLimitReached(
        metric=result.metric,
        limit=result.hard_limit or 0,
        retry_after=result.period.seconds_left(now or timezone.now()),
    )


def usage_record(*, tenant: Tenant, metric: str, quantity: int = 1) -> MeterResult:
    """Count usage of a metered metric (``ai_requests`` by the agents), refused with
    ``UsageLimitReached`` (429 ``quota_exceeded``) over the plan's hard limit. Flushed to the
    billing ledger within about two minutes."""
    if metric not in METERED:
        raise UnknownMetric(metric)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise DomainError("invalid_quantity", "quantity must be a positive integer.", status=400)
    result = metered_count(tenant=tenant, metric=metric, quantity=quantity)
    if not result.counted:
        raise _limit_reached(result)
    return result


@lru_cache(maxsize=1)
def _exempt_paths() -> tuple[tuple[str, ...], frozenset[str]]:
    entries = settings.API_USAGE_EXEMPT_PATHS
    return tuple(e for e in entries if e.endswith("/")), frozenset(e for e in entries if not e.endswith("/"))


def api_call_meter(*, tenant: Tenant, path: str, method: str = "GET") -> None:
    """Count one authenticated API request (``leanvibe.api.base``, ``API_USAGE_METER``), before
    its view runs; refuse it with 429 over the plan's hard limit. Exempt paths (sign-in,
    billing, usage: what a blocked tenant needs to upgrade) are never refused, and not counted
    while the tenant is over its limit. The registered API gates (billing's payment guard) are
    read in the same round trip; a closed one refuses the request (its own error) uncounted.
    With ``API_USAGE_METERING`` off only the gates are read."""
    gates = [(gate, gate.closes(method)) for gate in api_gates() if not path.startswith(gate.exempt_prefixes)]
    if not settings.API_USAGE_METERING and not gates:
        return
    result = metered_count(
        tenant=tenant,
        metric=Resource.API_CALLS,
        quantity=1 if settings.API_USAGE_METERING else 0,
        gates=gates,
    )
    if result.closed_by is not None:
        raise result.closed_by.refuse(result.gate_value)
    if not result.counted:
        prefixes, exact = _exempt_paths()
        if path in exact or path.startswith(prefixes):
            return
        raise _limit_reached(result)


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
            count=lambda tenant: period_usage(tenant, Resource.API_CALLS),
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
