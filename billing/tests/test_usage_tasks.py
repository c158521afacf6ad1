"""The beat task, on a real Celery worker, against committed data (the fixture of
``tenants/tests/test_tasks.py``: this run's private queue, every tenant dropped afterwards)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from celery.signals import task_postrun
from django.utils import timezone

from billing import tasks
from billing.metering import pending_windows
from billing.models import UsageRecord
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 (the fixture)
from tenants.usage import metered_count

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.mark.integration
def test_the_beat_task_flushes_closed_windows_once_through_a_real_worker():
    tenant = tenant_provision(
        organization_name="Metered", billing_email="m@metered.test", admin_email="m@metered.test"
    ).tenant
    old = timezone.now() - timedelta(minutes=5)
    for _ in range(4):
        metered_count(tenant=tenant, metric="api_calls", now=old)
    metered_count(tenant=tenant, metric="ai_requests", quantity=3, now=old)
    metered_count(tenant=tenant, metric="api_calls")  # the open window stays in Redis

    done: list[str] = []

    def finished(sender: Any = None, **_: Any) -> None:
        if sender is not None and sender.name == tasks.usage_flush.name:
            done.append(sender.name)

    task_postrun.connect(finished, weak=False, dispatch_uid="test-usage-flush-done")
    try:
        tasks.usage_flush.delay()
        wait_for(lambda: len(done) >= 1, "the flush task")
        rows = {r.metric: r for r in UsageRecord.objects.filter(tenant=tenant)}
        assert {m: r.quantity for m, r in rows.items()} == {"api_calls": 4, "ai_requests": 3}
        assert {r.source for r in rows.values()} == {"counter"}
        assert [(w.metric, w.quantity) for w in pending_windows(tenant_id=tenant.id)] == [("api_calls", 1)]
        # A duplicate delivery (acks_late, a lost worker) adds nothing.
        tasks.usage_flush.delay()
        wait_for(lambda: len(done) >= 2, "the second flush")
        assert UsageRecord.objects.filter(tenant=tenant).count() == 2
    finally:
        task_postrun.disconnect(dispatch_uid="test-usage-flush-done")
