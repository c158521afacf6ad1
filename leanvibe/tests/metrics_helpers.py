"""Reading the metrics as Prometheus would: this process's registry, or a scrape of ``/metrics``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(name: str, **labels: str) -> float:
    """A sample of this process's registry (0 when the series does not exist yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client: Client | None = None, **extra: Any) -> Samples:
    """``GET /metrics`` on the public host, from the machine itself (or with the token)."""
    client = client or Client()
    meta: dict[str, Any] = {"REMOTE_ADDR": "127.0.0.1", **extra}
    if settings.METRICS_TOKEN:
        meta["HTTP_AUTHORIZATION"] = f"Bearer {settings.METRICS_TOKEN}"
    response = client.get("/metrics", **meta)
    assert response.status_code == 200, response.content[:300]
    return parse(response.content.decode())


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))
