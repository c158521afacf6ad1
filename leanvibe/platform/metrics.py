"""The kernel's metrics of work outside requests: Celery queue lengths in beat's snapshot (the
apps add their gauges from their ``ready()``), and the tasks the workers ran."""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun
from kombu.exceptions import ChannelError
from prometheus_client import Counter

from leanvibe.celery import app
from leanvibe.metrics import GaugeValues, SnapshotGauge, snapshot_gauge_register
from leanvibe.platform.checks import expected_queues

CELERY_TASKS = Counter(
    "leanvibe_celery_tasks",
    "Celery tasks the workers ran, by task name and final state (success, failure, retry...).",
    ["task", "state"],
)


@task_postrun.connect(dispatch_uid="leanvibe.platform.metrics.task_ran")
def _task_ran(sender: Any = None, state: str | None = None, **_: Any) -> None:
    """Names are the registered tasks' (a fixed set), states Celery's."""
    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), state=str(state or "unknown").lower()).inc()


def celery_queue_lengths() -> GaugeValues:
    """Messages waiting in each queue the platform's workers consume (the broker's own count:
    a task a worker holds is no longer waiting)."""
    lengths: dict[tuple[str, ...], float] = {}
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for queue in expected_queues():
            try:
                waiting = channel.queue_declare(queue=queue, passive=True).message_count
            except ChannelError:  # never declared, or emptied and removed by the broker
                waiting = 0
            lengths[(queue,)] = float(waiting)
    return lengths


def register_kernel_gauges() -> None:
    snapshot_gauge_register(
        SnapshotGauge(
            name="leanvibe_celery_queue_length",
            documentation="Messages waiting in each Celery queue the workers consume.",
            labels=("queue",),
            compute=celery_queue_lengths,
        )
    )
