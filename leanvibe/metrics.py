"""Prometheus metrics of the platform: what ``/metrics`` (and a Celery worker's metrics port)
expose besides django-prometheus' request, database and cache metrics.

Two kinds:

- **counters and histograms** of events (sign-ups, sign-ins, usage, webhook events, agent runs)
  live beside the code where the event happens, in each app, and count in the process that saw
  it. With several processes (gunicorn workers, Celery's prefork children) they write to
  ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and a scrape sums them
  (:func:`scrape_registry`);
- **gauges of the whole platform** (tenants by status and plan, MRR, tenants in dunning, Celery
  queue lengths) would need queries over every tenant: beat runs :func:`metrics_snapshot_take`
  every minute, which computes each registered :class:`SnapshotGauge` and stores the result in
  Redis; a scrape reads it back with one ``GET`` (:class:`SnapshotCollector`), never a query per
  tenant. ``leanvibe_metrics_snapshot_age_seconds`` says how old it is (``+Inf`` before the first
  one), so an alert sees a stopped beat or worker.

Apps add their gauges from ``AppConfig.ready()`` (:func:`snapshot_gauge_register`), the same
plug-in pattern as the self-check's registry, so the kernel imports no app.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from leanvibe import redis as lv_redis

logger = logging.getLogger(__name__)

#: Redis key (after ``CACHE_KEY_PREFIX``) of the snapshot beat's task writes.
SNAPSHOT_KEY_SUFFIX = "platform:metrics-snapshot"
#: The snapshot outlives this many seconds without a new one only as a stale value to alert on.
SNAPSHOT_TTL = 24 * 3600
SNAPSHOT_AGE_METRIC = "leanvibe_metrics_snapshot_age_seconds"

#: ``{label values: value}`` of one gauge; label values in the order of ``SnapshotGauge.labels``.
GaugeValues = Mapping[tuple[str, ...], float]


@dataclass(frozen=True)
class SnapshotGauge:
    """A gauge computed by beat's snapshot task. ``compute()`` returns every series: label values
    (bounded sets: plans, statuses, queue names; never a tenant id) to the value."""

    name: str
    documentation: str
    labels: tuple[str, ...]
    compute: Callable[[], GaugeValues]


class MetricsRegistryError(RuntimeError):
    pass


_gauges: dict[str, SnapshotGauge] = {}


def snapshot_gauge_register(gauge: SnapshotGauge) -> None:
    existing = _gauges.get(gauge.name)
    if existing is not None and existing != gauge:
        raise MetricsRegistryError(f"snapshot gauge {gauge.name!r} is already registered")
    _gauges[gauge.name] = gauge


def snapshot_gauge_unregister(name: str) -> None:
    """Remove a gauge (an app switched off at run time; tests)."""
    _gauges.pop(name, None)


def snapshot_gauges() -> list[SnapshotGauge]:
    return [_gauges[name] for name in sorted(_gauges)]


def snapshot_key() -> str:
    return f"{settings.CACHE_KEY_PREFIX}:{SNAPSHOT_KEY_SUFFIX}"


def metrics_snapshot_take(*, now: float | None = None) -> dict[str, Any]:
    """Compute every registered gauge and store them in Redis as one JSON value. A gauge whose
    computation fails is left out (and logged): the others are still fresh, and the missing
    series show on the dashboard as a gap."""
    gauges: dict[str, list[list[Any]]] = {}
    for gauge in snapshot_gauges():
        try:
            values = gauge.compute()
        except Exception:
            logger.exception("metrics snapshot: %s failed", gauge.name)
            continue
        gauges[gauge.name] = [[list(labels), float(value)] for labels, value in sorted(values.items())]
    snapshot = {"taken_at": time.time() if now is None else now, "gauges": gauges}
    lv_redis.client().set(snapshot_key(), json.dumps(snapshot), ex=SNAPSHOT_TTL)
    return snapshot


def metrics_snapshot_read() -> dict[str, Any] | None:
    raw = lv_redis.client().get(snapshot_key())
    if not raw:
        return None
    try:
        snapshot = json.loads(raw)
    except ValueError:
        return None
    return snapshot if isinstance(snapshot, dict) else None


class SnapshotCollector:
    """The snapshot as gauges, read from Redis once per scrape. Every registered gauge is
    exposed (without series until a snapshot has it), and the snapshot's age."""

    def collect(self) -> Iterator[Metric]:
        try:
            snapshot = metrics_snapshot_read()
        except Exception:  # Redis down: the request metrics are still worth a scrape
            logger.warning("metrics snapshot unreadable", exc_info=True)
            snapshot = None
        stored = (snapshot or {}).get("gauges") or {}
        for gauge in snapshot_gauges():
            family = GaugeMetricFamily(gauge.name, gauge.documentation, labels=list(gauge.labels))
            for labels, value in stored.get(gauge.name, []):
                if len(labels) == len(gauge.labels):
                    family.add_metric([str(label) for label in labels], float(value))
            yield family
        taken_at = (snapshot or {}).get("taken_at")
        age = max(0.0, time.time() - float(taken_at)) if taken_at is not None else math.inf
        yield GaugeMetricFamily(
            SNAPSHOT_AGE_METRIC,
            "Seconds since beat's metrics snapshot was taken (+Inf: none yet).",
            value=age,
        )


class _Forward:
    """Another registry's metrics, as one collector (so a per-scrape registry can hold them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def multiprocess_dir() -> str:
    """prometheus_client's multiprocess folder of this process ("" when not in that mode)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")


def scrape_registry(*, snapshot: bool = True) -> CollectorRegistry:
    """What one scrape exposes: this process's metrics, or in multiprocess mode every process's
    summed from the shared folder; plus the snapshot's gauges (web only: ``snapshot=False`` for
    a worker's port, so the same series are not exposed by two kinds of pods)."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    if snapshot:
        registry.register(SnapshotCollector())
    return registry
