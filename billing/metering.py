"""Writes of billing: the usage ledger (flush of the Redis windows, usage posted by clients)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.catalog import meter_event_name
from billing.models import BillingAccount, UsageRecord
from billing.stripe_api import billing_enabled
from leanvibe import redis as lv_redis
from leanvibe.errors import DomainError, UsageLimitReached
from tenants.models import Tenant
from tenants.plans import METERED, OveragePolicy, spec_for
from tenants.usage import (
    WINDOW_SECONDS,
    MeterResult,
    UnknownMetric,
    dirty_windows_key,
    metered_count,
    metered_uncount,
    tenant_dirty_windows_key,
    window_key,
)

logger = logging.getLogger(__name__)

#: A window is flushed once it ended this long ago: a request counted by a server whose clock
#: is behind still lands in its window before the window is read.
FLUSH_SETTLE_SECONDS = 60
_FLUSH_BATCH = 500

# After the ledger insert committed: the window leaves Redis. Returns what was added to it
# since it was read (only a server whose clock is over FLUSH_SETTLE_SECONDS behind can do that),
# which is lost and logged.
_RELEASE_LUA = """
local left = redis.call('DECRBY', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[2])
return left
"""


@dataclass(frozen=True)
class PendingWindow:
    member: str
    tenant_id: uuid.UUID
    metric: str
    start: datetime
    quantity: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.tenant_id}:{self.metric}:{int(self.start.timestamp())}"

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=WINDOW_SECONDS)


def parse_window_member(member: str) -> tuple[uuid.UUID, str, datetime] | None:
    try:
        tenant_id, metric, start = member.split(":")
        return uuid.UUID(tenant_id), metric, datetime.fromtimestamp(int(start), tz=UTC)
    except ValueError:
        return None


def pending_windows(
    *, closed_before: datetime | None = None, tenant_id: uuid.UUID | None = None
) -> list[PendingWindow]:
    """Windows with an unflushed count: those that started before ``closed_before`` (all when
    None), of one tenant (its own set) or of all (the dirty set, scanned 1,000 a page); then
    one ``MGET`` of their counters."""
    client = lv_redis.client()
    if tenant_id is not None:
        raw = client.smembers(tenant_dirty_windows_key(tenant_id))
    else:
        raw = set(client.sscan_iter(dirty_windows_key(), count=1000))
    members = sorted(m.decode() if isinstance(m, bytes) else str(m) for m in raw)
    found = []
    for member in members:
        parsed = parse_window_member(member)
        if parsed is None or (closed_before is not None and parsed[2] >= closed_before):
            continue
        found.append((member, parsed))
    values = client.mget([window_key(m) for m, _ in found]) if found else []
    return [
        PendingWindow(member, tenant_id_, metric, start, int(value or 0))
        for (member, (tenant_id_, metric, start)), value in zip(found, values, strict=True)
    ]


def usage_windows_persist(*, windows: Sequence[PendingWindow]) -> int:
    """The first half of a flush: insert each window as a ledger row, once (ON CONFLICT DO
    NOTHING on the idempotency key). Returns how many rows were new."""
    live = set(Tenant.objects.filter(id__in={w.tenant_id for w in windows}).values_list("id", flat=True))
    rows = [
        UsageRecord(
            tenant_id=w.tenant_id,
            metric=w.metric,
            quantity=w.quantity,
            window_start=w.start,
            window_end=w.end,
            source=UsageRecord.Source.COUNTER,
            idempotency_key=w.idempotency_key,
        )
        for w in windows
        if w.quantity > 0 and w.tenant_id in live
    ]
    with transaction.atomic():
        before = UsageRecord.objects.filter(idempotency_key__in=[r.idempotency_key for r in rows]).count()
        UsageRecord.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows) - before


def usage_windows_release(*, windows: Sequence[PendingWindow]) -> None:
    """The second half of a flush, once the insert committed: the flushed windows leave Redis."""
    client = lv_redis.client()
    release = client.register_script(_RELEASE_LUA)
    pipe = client.pipeline(transaction=False)
    for w in windows:
        keys = [window_key(w.member), dirty_windows_key(), tenant_dirty_windows_key(w.tenant_id)]
        release(keys=keys, args=[w.quantity, w.member], client=pipe)
    for w, left in zip(windows, pipe.execute(), strict=True):
        if int(left) > 0:
            logger.warning("usage window %s got %s more after it was read; not in the ledger", w.member, left)


@dataclass(frozen=True)
class FlushResult:
    windows: int
    rows_created: int


def usage_flush(
    *, now: datetime | None = None, progress: Callable[[int, int], None] | None = None
) -> FlushResult:
    """Move every closed window from Redis to the ledger. Safe to run concurrently and to kill
    at any point: a window inserted but not released is found again, its insert is a no-op
    (same idempotency key) and it is released then. Nothing is lost, nothing counted twice.
    Run it outside a transaction (the beat task, the command): each batch then commits before
    it is released."""
    now = now or timezone.now()
    windows = pending_windows(closed_before=now - timedelta(seconds=WINDOW_SECONDS + FLUSH_SETTLE_SECONDS))
    created = 0
    for offset in range(0, len(windows), _FLUSH_BATCH):
        batch = windows[offset : offset + _FLUSH_BATCH]
        created += usage_windows_persist(windows=batch)
        usage_windows_release(windows=batch)  # only after the insert committed
        if progress:
            progress(offset + len(batch), len(windows))
    return FlushResult(windows=len(windows), rows_created=created)


# --- usage posted by clients -------------------------------------------------------------------


ANSWER_FIELDS = ("metric_name", "quantity", "period_total", "limit", "overage", "status")


@dataclass(frozen=True)
class UsageAnswer:
    body: dict[str, Any]
    created: bool


def usage_status(*, plan: str, metric: str, total: int) -> dict[str, Any]:
    """``limit`` (the amount included in the plan), ``overage`` (the use beyond it) and
    ``status``: ``ok`` within the limit, ``grace`` over it but within a grace plan's hard
    limit, ``overage`` over it (a charged plan), or at it on a blocking plan (the next unit is
    refused)."""
    spec = spec_for(plan)
    limit = spec.limits.limit_for(metric)
    if limit is None:
        return {"limit": None, "overage": 0, "status": "ok"}
    overage = max(0, total - limit)
    if spec.overage.policy == OveragePolicy.BLOCK:
        status = "overage" if total >= limit else "ok"
    elif total <= limit:
        status = "ok"
    else:
        status = "grace" if spec.overage.policy == OveragePolicy.GRACE else "overage"
    return {"limit": limit, "overage": overage, "status": status}


def _api_key(tenant: Tenant, idempotency_key: str | None) -> str:
    return f"{tenant.id}:api:{idempotency_key or uuid.uuid4()}"


def usage_ledger_record(
    *,
    tenant: Tenant,
    metric: str,
    quantity: int,
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> UsageAnswer:
    """Record usage a client reports: a ledger row and the period counter, both or neither.
    Refused with ``UsageLimitReached`` when it would pass the plan's hard limit. A repeated
    ``idempotency_key`` returns the first answer (``created`` False) and counts nothing."""
    if metric not in METERED:
        raise UnknownMetric(metric)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity <= 0:
        raise DomainError("invalid_quantity", "quantity must be a positive integer.", status=400)
    key = _api_key(tenant, idempotency_key)
    if idempotency_key is not None and (first := _first_answer(tenant, key)) is not None:
        return first
    now = timezone.now()
    counted: MeterResult | None = None
    try:
        with transaction.atomic():
            # The row first: a concurrent call with the same key waits on the unique index
            # here, then fails and returns the first answer, without counting.
            record = UsageRecord.objects.create(
                tenant=tenant,
                metric=metric,
                quantity=quantity,
                window_start=now,
                window_end=now,
                source=UsageRecord.Source.API,
                metadata=metadata or {},
                idempotency_key=key,
            )
            result = metered_count(tenant=tenant, metric=metric, quantity=quantity, windowed=False, now=now)
            if not result.counted:
                raise UsageLimitReached(
                    metric=metric, limit=result.hard_limit or 0, retry_after=result.period.seconds_left(now)
                )
            counted = result
            body = {
                "metric_name": metric,
                "quantity": quantity,
                "period_total": result.total,
                **usage_status(plan=tenant.plan, metric=metric, total=result.total),
            }
            record.response = body
            record.save(update_fields=["response"])
    except BaseException as exc:
        if counted is not None:  # counted, but the row did not commit: take the count back
            metered_uncount(tenant=tenant, metric=metric, quantity=quantity, period=counted.period)
        if isinstance(exc, IntegrityError) and (first := _first_answer(tenant, key)) is not None:
            return first
        raise
    return UsageAnswer(body, created=True)


def _first_answer(tenant: Tenant, key: str) -> UsageAnswer | None:
    row = UsageRecord.objects.filter(tenant=tenant, idempotency_key=key).values_list("response", flat=True)
    found = row.first()
    if found is None:
        return None
    # jsonb keeps keys in its own order: give them back in the first answer's.
    return UsageAnswer({name: found[name] for name in ANSWER_FIELDS}, created=False)


# --- reporting the ledger to Stripe ---------------------------------------------------------

#: Stripe refuses Meter events older than this.
STRIPE_METER_EVENT_MAX_AGE = timedelta(days=35)


@dataclass(frozen=True)
class ReportResult:
    reported: int
    #: Rows Stripe will not take any more (older than 35 days): marked, logged, never billed.
    expired: int


def _meter_event_send(row: UsageRecord, account: BillingAccount) -> None:
    """One Billing Meter event for one ledger row, named by the row's idempotency key: Stripe
    counts an identifier once (24 h), so sending a row twice bills it once. A customer on a test
    clock lives in the clock's time: its use happens at the clock's current time."""
    at = account.test_clock_time if account.stripe_test_clock_id and account.test_clock_time else None
    try:
        stripe.billing.MeterEvent.create(
            event_name=meter_event_name(row.metric),
            payload={"stripe_customer_id": account.stripe_customer_id, "value": str(row.quantity)},
            identifier=row.idempotency_key,
            timestamp=int((at or row.window_start).timestamp()),
        )
    except stripe.InvalidRequestError as exc:
        if "already exists" not in str(exc.user_message or exc):
            raise
        # Sent before, by a report that died before marking the row: counted once already.


def usage_report(*, limit: int = 500, now: datetime | None = None) -> ReportResult:
    """Send the ledger rows not yet reported to Stripe as Billing Meter events, then mark them.

    Only tenants with a Stripe customer are reported (with billing off there is nobody to bill,
    and a tenant's rows wait for its customer). A report killed between sending and marking
    sends the row again next time, which Stripe ignores (same identifier). Stripe being down
    stops the run with the rows left unreported, for the next run."""
    if not billing_enabled():
        return ReportResult(0, 0)
    now = now or timezone.now()
    rows = list(
        UsageRecord.objects.filter(reported_at__isnull=True)
        .exclude(tenant__billing_account__stripe_customer_id="")
        .filter(tenant__billing_account__isnull=False)
        .select_related("tenant__billing_account")
        .order_by("window_start", "id")[:limit]
    )
    reported = expired = 0
    for row in rows:
        if now - row.window_start > STRIPE_METER_EVENT_MAX_AGE:
            logger.warning("usage row %s is older than Stripe accepts: not billed", row.idempotency_key)
            expired += 1
        else:
            _meter_event_send(row, row.tenant.billing_account)
            reported += 1
        UsageRecord.objects.filter(pk=row.pk, reported_at__isnull=True).update(reported_at=now)
    return ReportResult(reported, expired)
