"""Races: the hot path's limit decision is atomic; one idempotency key records once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from billing.metering import UsageAnswer, usage_ledger_record
from billing.models import UsageRecord
from leanvibe import redis as lv_redis
from tenants.models import Tenant
from tenants.periods import billing_period
from tenants.usage import metered_count, period_key, period_usage

THREADS = 4


def _race(work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_calls_at_the_limit_count_exactly_up_to_it():
    tenant = Tenant(id=uuid.uuid4(), plan="starter")  # counters only: no row needed
    lv_redis.client().set(period_key(tenant.id, "api_calls", billing_period(tenant)), 9_950)
    outcomes = _race(lambda _: [metered_count(tenant=tenant, metric="api_calls").counted for _ in range(25)])
    flat = [counted for batch in outcomes for counted in batch]
    assert flat.count(True) == 50 and flat.count(False) == 50
    assert period_usage(tenant, "api_calls") == 10_000


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_idempotency_key_record_once():
    tenant = Tenant.objects.create(schema_name="race_key", organization_name="Race", billing_email="r@x.test")
    for round_ in range(5):
        key = f"job-{round_}"

        def post(_: int, key: str = key) -> UsageAnswer:
            return usage_ledger_record(tenant=tenant, metric="ai_requests", quantity=3, idempotency_key=key)

        answers = _race(post)
        assert not [a for a in answers if isinstance(a, Exception)], answers
        assert sum(a.created for a in answers) == 1
        assert all(list(a.body.items()) == list(answers[0].body.items()) for a in answers)
        assert (
            UsageRecord.objects.filter(tenant=tenant, idempotency_key=f"{tenant.id}:api:{key}").count() == 1
        )
    assert period_usage(tenant, "ai_requests") == 15
