"""The kernel's snapshot gauge: Celery queue lengths (the apps add theirs from their ``ready()``)."""

from __future__ import annotations

from kombu.exceptions import ChannelError

from leanvibe.celery import app
from leanvibe.metrics import GaugeValues, SnapshotGauge, snapshot_gauge_register
from leanvibe.platform.checks import expected_queues


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
