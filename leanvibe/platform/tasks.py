"""Celery tasks of the platform itself."""

from __future__ import annotations

import time

from celery import shared_task

from leanvibe import redis as lv_redis
from leanvibe.metrics import metrics_snapshot_take
from leanvibe.platform.checks import HEARTBEAT_MAX_AGE, heartbeat_key


@shared_task(ignore_result=True)
def platform_heartbeat() -> float:
    """Beat, every minute: the time it ran, for ``check_platform``'s beat check (a worker of the
    default queue runs it, so a fresh heartbeat says beat and that queue's workers are up)."""
    now = time.time()
    lv_redis.client().set(heartbeat_key(), repr(now), ex=int(HEARTBEAT_MAX_AGE * 10))
    return now


@shared_task(ignore_result=True)
def metrics_snapshot() -> float:
    """Beat, every minute: the platform's gauges (tenants, MRR, dunning, queue lengths) computed
    once and stored in Redis, where every scrape of ``/metrics`` reads them
    (``leanvibe.metrics``). Returns when it was taken."""
    return float(metrics_snapshot_take()["taken_at"])
