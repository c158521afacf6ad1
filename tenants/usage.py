"""Per-tenant usage against the plan catalogue, and the quota checks that enforce it."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from leanvibe import redis as lv_redis
from leanvibe.errors import DomainError, QuotaExceeded, UsageLimitReached
from tenants.metrics import USAGE
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
    storage_measures,
)

logger = logging.getLogger(__name__)

# A period counter outlives its period by a few days (a late read of last month's total).
_PERIOD_TTL = 40 * 24 * 3600
#: Length of a flush window, in seconds: the counters the flush moves to the ledger.
WINDOW_SECONDS = 60
# An unflushed window is kept this long (the flush runs every minute; this bounds the memory a
# stopped beat can cost, and is the age after which an unflushed window is lost).
_WINDOW_TTL = 7 * 24 * 3600

# One round trip per counted event (or per batch of them, ``_LocalMeter`` below). The count is
# refused, and nothing is written, when it would take the period's total over the hard limit
# (ARGV[2], -1 for none): a refused request does not count, so a blocked tenant's total stays at
# its limit and nothing refused reaches the ledger. Gates (``tenants.registry.ApiGate``) are read
# first: a closed gate refuses the request and nothing of it is counted. ``forced`` (ARGV[8])
# are events a process already served on its lease: counted whatever the limit or the gates.
# KEYS: period counter, window counter, dirty-window set, the tenant's dirty-window set (what
# analytics read, without scanning every tenant's), then one key per gate.
# ARGV: quantity, hard limit, period TTL, window TTL, dirty-set member, 1 if windowed else 0,
# number of gates, forced, then per gate the values that close it for this request, joined by
# commas (empty: it cannot close this one).
# Returns {period total after the call, 1 if counted else 0, closing gate (1-based) or 0, its
# value, then every gate's value ('' when unset)}.
_METER_LUA = """
local qty = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local ngates = tonumber(ARGV[7])
local forced = tonumber(ARGV[8])
local function add(n)
  local total = redis.call('INCRBY', KEYS[1], n)
  if total == n then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  if ARGV[6] == '1' and redis.call('INCRBY', KEYS[2], n) == n then
    -- a new window: its expiry, and it joins the dirty sets (until the flush releases it)
    redis.call('EXPIRE', KEYS[2], ARGV[4])
    redis.call('SADD', KEYS[3], ARGV[5])
    redis.call('SADD', KEYS[4], ARGV[5])
  end
  return total
end
local values = {}
for i = 1, ngates do values[i] = redis.call('GET', KEYS[4 + i]) or '' end
local function answer(total, counted, gate, value)
  local out = {total, counted, gate, value}
  for i = 1, ngates do out[4 + i] = values[i] end
  return out
end
if forced > 0 then add(forced) end
for i = 1, ngates do
  local value = values[i]
  if value ~= '' and string.find(',' .. ARGV[8 + i] .. ',', ',' .. value .. ',', 1, true) then
    return answer(0, 0, i, value)
  end
end
if qty == 0 then return answer(0, 1, 0, '') end
if limit >= 0 then
  local used = tonumber(redis.call('GET', KEYS[1]) or '0')
  if used + qty > limit then return answer(used, 0, 0, '') end
end
return answer(add(qty), 1, 0, '')
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
    #: Every gate's value as read ("" when unset), by gate name.
    gate_values: dict[str, str] = field(default_factory=dict)


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


def _decoded(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")


def metered_count(
    *,
    tenant: Tenant,
    metric: str,
    quantity: int = 1,
    windowed: bool = True,
    now: datetime | None = None,
    gates: list[tuple[ApiGate, frozenset[str]]] | None = None,
    forced: int = 0,
    period: Period | None = None,
) -> MeterResult:
    """Count ``quantity`` of ``metric`` for the tenant's current period unless that takes it over
    the plan's hard limit; one Redis round trip. ``windowed`` also adds it to the current
    minute's window, which the billing flush moves to the ledger (usage written to the ledger
    directly, ``POST /api/v1/billing/usage``, passes False). ``forced`` more are counted first,
    unconditionally (events already served on a local lease)."""
    now = now or timezone.now()
    period = period or billing_period(tenant, now)
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
        forced,
    ]
    args += [",".join(sorted(closing)) for _, closing in gates]
    total, counted, gate_index, gate_value, *values = _meter_script()(keys=keys, args=args)
    closed_by = gates[int(gate_index) - 1][0] if gate_index else None
    if counted and quantity > 0 and closed_by is None:
        USAGE.labels(metric=metric).inc(quantity)  # ``forced`` calls were counted when served
    return MeterResult(
        metric,
        int(total),
        bool(counted),
        hard_limit,
        period,
        closed_by,
        _decoded(gate_value),
        {gate.name: _decoded(value) for (gate, _), value in zip(gates, values, strict=True)},
    )


def metered_uncount(*, tenant: Tenant, metric: str, quantity: int, period: Period) -> None:
    """Take back a period count whose ledger write did not commit (not windowed usage)."""
    lv_redis.client().decrby(period_key(tenant.id, metric, period), quantity)


def period_usage(tenant: Tenant, metric: str) -> int:
    if metric == Resource.API_CALLS:
        meter_local_flush()  # this process's calls counted on a lease are read too
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


# --- the API call meter, with local leases -------------------------------------------------------
#: A lease lives this long: the bound on how stale a lease's gate values (billing's payment
#: guard) may be in another process, and on how long served calls wait in memory.
LEASE_SECONDS = 0.1
#: How often the flusher thread sends calls served on leases: the longest they wait in memory.
FLUSH_SECONDS = 0.1
#: A tenant far from its limit may count this many calls on one lease; near the limit a lease
#: is 1/16 of what is left, so sixteen processes together cannot pass the limit. 0 disables.
_ALLOWANCE_SHARE = 16


@dataclass
class _Lease:
    plan: str
    period: Period
    window_start: int
    expires: float  # time.monotonic()
    allowance: int
    gate_values: dict[str, str]
    pending: int = 0  # calls served on this lease, not yet in Redis


class _LocalMeter:
    """Per-process leases that let the API call meter skip Redis for most calls.

    A round trip to Redis (the meter's script) answers with the period's total and every gate's
    value; if the tenant is far enough from its hard limit, the process gets a lease: it may
    serve up to ``allowance`` more calls in the next ``LEASE_SECONDS`` counting them in memory,
    as long as the gates it read stay open for each call's method and path. The calls served on
    a lease reach Redis with the next round trip (``forced``, counted unconditionally), or from a
    flusher thread within ``LEASE_SECONDS``. Near the limit the allowance shrinks to nothing and
    every call is exact again. What this costs, written in docs/architecture.md: a gate closed
    in another process takes up to ``LEASE_SECONDS`` to be seen here, and a process killed
    (SIGKILL) loses the calls it served in its last ``LEASE_SECONDS`` at most.
    """

    def __init__(self) -> None:
        self._after_fork()

    def _after_fork(self) -> None:
        # A forked child starts empty: the parent's served calls are the parent's to send.
        self.lock = threading.Lock()
        self.leases: dict[str, _Lease] = {}
        self.flusher_pid = 0

    def take(
        self,
        tenant: Tenant,
        gates: list[tuple[ApiGate, frozenset[str]]],
        now: datetime,
        window_start: int,
        clock: float,
    ) -> bool:
        with self.lock:
            lease = self.leases.get(str(tenant.id))
            if (
                lease is None
                or lease.allowance <= 0
                or lease.expires < clock
                or lease.window_start != window_start
                or now >= lease.period.end
                or lease.plan != tenant.plan
                or any(lease.gate_values.get(gate.name, "") in closing for gate, closing in gates)
            ):
                return False
            lease.allowance -= 1
            lease.pending += 1
            return True

    def drain(self, tenant_id: str) -> _Lease | None:
        with self.lock:
            return self.leases.pop(tenant_id, None)

    def grant(self, tenant: Tenant, result: MeterResult, window_start: int, clock: float) -> None:
        batch = settings.API_USAGE_METER_BATCH
        if result.hard_limit is None:
            allowance = batch
        else:
            allowance = min(batch, max(0, result.hard_limit - result.total) // _ALLOWANCE_SHARE)
        if allowance <= 0:
            return
        self._flusher_ensure()
        lease = _Lease(
            tenant.plan, result.period, window_start, clock + LEASE_SECONDS, allowance, result.gate_values
        )
        with self.lock:
            previous = self.leases.get(str(tenant.id))
            if previous is not None and previous.pending:
                self._flush_lease(str(tenant.id), previous)  # another thread's, from an older window
            self.leases[str(tenant.id)] = lease

    def restore(self, tenant_id: str, lease: _Lease) -> None:
        """Calls served on ``lease`` whose round trip failed: kept for the flusher to retry."""
        with self.lock:
            current = self.leases.get(tenant_id)
            if current is None:
                lease.allowance, lease.expires = 0, 0.0
                self.leases[tenant_id] = lease
            elif current.window_start == lease.window_start and current.period == lease.period:
                current.pending += lease.pending
            else:
                self._flush_lease(tenant_id, lease)

    def revoke(self, tenant_id: str) -> None:
        """No more local calls for this tenant until its next round trip (its gates changed)."""
        with self.lock:
            lease = self.leases.get(tenant_id)
            if lease is not None:
                lease.allowance, lease.expires = 0, 0.0

    def reset(self) -> None:
        with self.lock:
            self.leases.clear()

    def flush(self) -> int:
        """Send every lease's served calls to Redis; expired leases without any are dropped."""
        clock = time.monotonic()
        with self.lock:
            due = [(tenant_id, lease) for tenant_id, lease in self.leases.items() if lease.pending]
            for tenant_id, lease in list(self.leases.items()):
                if lease.expires < clock:
                    del self.leases[tenant_id]
                elif lease.pending:
                    self.leases[tenant_id] = _Lease(
                        lease.plan,
                        lease.period,
                        lease.window_start,
                        lease.expires,
                        lease.allowance,
                        lease.gate_values,
                    )
        sent = 0
        for tenant_id, lease in due:
            try:
                _forced_count(tenant_id, lease)
                sent += lease.pending
            except Exception:
                logger.warning("usage meter: %s served calls not sent yet", lease.pending, exc_info=True)
                self.restore(tenant_id, lease)
        return sent

    def _flush_lease(self, tenant_id: str, lease: _Lease) -> None:
        """Called with the lock held: hand the calls to the flusher (never Redis under the lock)."""
        orphan = self.leases.get(f"{tenant_id}@{lease.window_start}")
        if orphan is not None:
            orphan.pending += lease.pending
        else:
            self.leases[f"{tenant_id}@{lease.window_start}"] = _Lease(
                lease.plan, lease.period, lease.window_start, 0.0, 0, {}, lease.pending
            )

    def _flusher_ensure(self) -> None:
        pid = os.getpid()
        if self.flusher_pid == pid:
            return
        with self.lock:
            if self.flusher_pid == pid:
                return
            self.flusher_pid = pid  # a forked worker starts its own
            threading.Thread(target=self._flush_forever, name="usage-meter-flush", daemon=True).start()
            atexit.register(self.flush)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            try:
                self.flush()
            except Exception:  # never let the thread die: the next round trip carries the calls
                logger.exception("usage meter flush failed")


def _forced_count(tenant_id: str, lease: _Lease) -> None:
    """The calls served on ``lease`` into their own period and window (no limit, no gates)."""
    real_id = tenant_id.split("@", 1)[0]
    member = window_member(real_id, Resource.API_CALLS, lease.window_start)
    _meter_script()(
        keys=[
            period_key(real_id, Resource.API_CALLS, lease.period),
            window_key(member),
            dirty_windows_key(),
            tenant_dirty_windows_key(real_id),
        ],
        args=[0, -1, _PERIOD_TTL, _WINDOW_TTL, member, 1, 0, lease.pending],
    )


_local_meter = _LocalMeter()
os.register_at_fork(after_in_child=_local_meter._after_fork)


def meter_lease_revoke(tenant_id: uuid.UUID | str) -> None:
    """The tenant's gates changed in this process: its next API call reads them from Redis."""
    _local_meter.revoke(str(tenant_id))


def meter_local_flush() -> int:
    """Send the calls this process served on leases to Redis now (tests, shutdown)."""
    return _local_meter.flush()


def meter_local_reset() -> None:
    """Forget every lease and the calls served on them (tests: Redis was emptied)."""
    _local_meter.reset()


def api_call_meter(*, tenant: Tenant, path: str, method: str = "GET") -> None:
    """Count one authenticated API request (``leanvibe.api.base``, ``API_USAGE_METER``), before
    its view runs; refuse it with 429 over the plan's hard limit. Exempt paths (sign-in,
    billing, usage: what a blocked tenant needs to upgrade) are never refused, and not counted
    while the tenant is over its limit. The registered API gates (billing's payment guard) are
    read in the same round trip; a closed one refuses the request (its own error) uncounted.
    With ``API_USAGE_METERING`` off only the gates are read.

    At most one Redis round trip: none while the process holds a lease for the tenant
    (``_LocalMeter``; ``API_USAGE_METER_BATCH`` = 0 turns leases off)."""
    gates = [
        (gate, frozenset() if path.startswith(gate.exempt_prefixes) else gate.closes(method))
        for gate in api_gates()
    ]
    metering = settings.API_USAGE_METERING
    if not metering and not any(closing for _, closing in gates):
        return
    now = timezone.now()
    clock = time.monotonic()
    window_start = int(now.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS
    leases = metering and settings.API_USAGE_METER_BATCH > 0
    if leases and _local_meter.take(tenant, gates, now, window_start, clock):
        USAGE.labels(metric=Resource.API_CALLS).inc()
        return
    period = billing_period(tenant, now)
    held = _local_meter.drain(str(tenant.id)) if leases else None
    forced = 0
    if held is not None and held.pending:
        if held.window_start == window_start and held.period == period:
            forced = held.pending
        else:
            _local_meter.restore(str(tenant.id), held)  # another window's: the flusher's
            held = None
    try:
        result = metered_count(
            tenant=tenant,
            metric=Resource.API_CALLS,
            quantity=1 if metering else 0,
            gates=gates,
            now=now,
            forced=forced,
            period=period,
        )
    except Exception:
        if held is not None and held.pending:
            _local_meter.restore(str(tenant.id), held)
        raise
    if result.closed_by is not None:
        raise result.closed_by.refuse(result.gate_value)
    if not result.counted:
        prefixes, exact = _exempt_paths()
        if path in exact or path.startswith(prefixes):
            return
        raise _limit_reached(result)
    if leases:
        _local_meter.grant(tenant, result, window_start, clock)


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
    """Size of every table of the tenant's schema (indexes and TOAST included), plus what the
    apps store for it outside the schema (``tenants.registry.storage_measure_register``: the
    agents' workspace files)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'm')",
            [tenant.schema_name],
        )
        in_schema = int(cursor.fetchone()[0])
    return in_schema + sum(measure(tenant) for measure in storage_measures())


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
