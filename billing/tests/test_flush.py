"""The flush moves closed Redis windows to the ledger exactly once, also after a crash."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.metering import (
    FLUSH_SETTLE_SECONDS,
    pending_windows,
    usage_flush,
    usage_windows_persist,
    usage_windows_release,
)
from billing.models import UsageRecord
from leanvibe import redis as lv_redis
from tenants.models import Tenant
from tenants.usage import (
    WINDOW_SECONDS,
    dirty_windows_key,
    metered_count,
    tenant_dirty_windows_key,
    window_key,
)


def _window_start(moment):
    epoch = int(moment.timestamp()) // WINDOW_SECONDS * WINDOW_SECONDS
    return moment.fromtimestamp(epoch, tz=moment.tzinfo)


@pytest.mark.django_db
def test_flush_moves_closed_windows_and_leaves_open_ones(tenant_a, tenant_b):
    now = timezone.now()
    old = now - timedelta(minutes=10)
    for _ in range(3):
        metered_count(tenant=tenant_a.tenant, metric="api_calls", now=old)
    metered_count(tenant=tenant_a.tenant, metric="ai_requests", quantity=4, now=old)
    metered_count(tenant=tenant_b.tenant, metric="api_calls", now=old)
    metered_count(tenant=tenant_a.tenant, metric="api_calls", now=now)  # still open

    result = usage_flush(now=now)
    assert (result.windows, result.rows_created) == (3, 3)
    rows = {
        (r.tenant_id, r.metric): r
        for r in UsageRecord.objects.filter(tenant__in=[tenant_a.tenant, tenant_b.tenant])
    }
    a_calls = rows[(tenant_a.tenant.id, "api_calls")]
    assert (a_calls.quantity, a_calls.source, a_calls.reported_at) == (3, "counter", None)
    assert a_calls.window_start == _window_start(old)
    assert a_calls.window_end - a_calls.window_start == timedelta(seconds=WINDOW_SECONDS)
    window = int(a_calls.window_start.timestamp())
    assert a_calls.idempotency_key == f"{tenant_a.tenant.id}:api_calls:{window}"
    assert rows[(tenant_a.tenant.id, "ai_requests")].quantity == 4
    assert rows[(tenant_b.tenant.id, "api_calls")].quantity == 1
    # Only the open window is left in Redis; a second flush finds nothing more.
    left = pending_windows(tenant_id=tenant_a.tenant.id)
    assert [(w.metric, w.quantity) for w in left] == [("api_calls", 1)]
    assert usage_flush(now=now).rows_created == 0
    # Once closed (and settled), it goes too.
    later = now + timedelta(seconds=WINDOW_SECONDS + FLUSH_SETTLE_SECONDS + 1)
    assert usage_flush(now=later).rows_created == 1
    assert pending_windows(tenant_id=tenant_a.tenant.id) == []


@pytest.mark.django_db
def test_a_flush_killed_between_insert_and_delete_loses_and_doubles_nothing(tenant_a):
    now = timezone.now()
    old = now - timedelta(minutes=5)
    for _ in range(7):
        metered_count(tenant=tenant_a.tenant, metric="api_calls", now=old)
    closed = pending_windows(closed_before=now - timedelta(minutes=2))
    assert [w.quantity for w in closed if w.tenant_id == tenant_a.tenant.id] == [7]

    assert usage_windows_persist(windows=closed) == 1  # inserted ... and the process dies here
    assert pending_windows(tenant_id=tenant_a.tenant.id)  # still in Redis

    result = usage_flush(now=now)  # the next run
    assert result.rows_created == 0
    rows = UsageRecord.objects.filter(tenant=tenant_a.tenant)
    assert [(r.metric, r.quantity) for r in rows] == [("api_calls", 7)]
    assert pending_windows(tenant_id=tenant_a.tenant.id) == []
    client = lv_redis.client()
    assert client.get(window_key(closed[0].member)) is None
    assert not client.sismember(dirty_windows_key(), closed[0].member)
    assert not client.sismember(tenant_dirty_windows_key(tenant_a.tenant.id), closed[0].member)
    # Released twice (a duplicate task): still one row, nothing left to flush.
    usage_windows_release(windows=closed)
    assert UsageRecord.objects.filter(tenant=tenant_a.tenant).count() == 1


@pytest.mark.django_db
def test_windows_of_a_deleted_tenant_are_dropped(tenant_a):
    gone = Tenant(id=uuid.uuid4(), plan="starter")  # counted, then deleted before the flush
    metered_count(tenant=gone, metric="api_calls", now=timezone.now() - timedelta(minutes=5))
    metered_count(tenant=tenant_a.tenant, metric="api_calls", now=timezone.now() - timedelta(minutes=5))
    tenant_id = gone.id
    assert usage_flush().rows_created == 1
    assert pending_windows(tenant_id=tenant_id) == []
    assert not UsageRecord.objects.filter(tenant_id=tenant_id).exists()


@pytest.mark.django_db
def test_flush_command_reports_progress(tenant_a, capsys):
    metered_count(tenant=tenant_a.tenant, metric="api_calls", now=timezone.now() - timedelta(minutes=5))
    call_command("billing_flush_usage")
    out = capsys.readouterr().out
    assert "1/1 windows flushed" in out
    assert "1 closed windows, 1 new ledger rows." in out
    assert UsageRecord.objects.filter(tenant=tenant_a.tenant, quantity=1).count() == 1


@pytest.mark.django_db
def test_beat_runs_the_flush_every_minute(settings):
    from leanvibe.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["flush-usage-windows"]
    assert entry == {"task": "billing.tasks.usage_flush", "schedule": 60.0}
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks
