"""Billing's metrics: Stripe webhook events as they arrive and are processed, and, in beat's
snapshot (``leanvibe.metrics``), the MRR and the tenants in dunning.

``leanvibe_webhook_events_total{type,result}``: ``type`` is the Stripe event type when it is
one dj-stripe knows (a bounded set), ``other`` for any other, ``unknown`` when the request was
not verified (its body is anyone's); ``result`` is ``received`` (verified and stored),
``rejected`` (refused: no or a wrong signature, no endpoint configured), ``processed`` or
``failed`` (processing raised; the sweep runs it again)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.db import transaction
from djstripe.signals import WEBHOOK_SIGNALS
from prometheus_client import Counter

from billing.models import BillingAccount
from billing.revenue import mrr_compute
from leanvibe.metrics import GaugeValues, SnapshotGauge, snapshot_gauge_register

WEBHOOK_EVENTS = Counter(
    "leanvibe_webhook_events", "Stripe webhook events by type and result.", ["type", "result"]
)


def webhook_event_type(body: Any) -> str:
    event_type = body.get("type") if isinstance(body, dict) else None
    return event_type if isinstance(event_type, str) and event_type in WEBHOOK_SIGNALS else "other"


def webhook_event_count(*, event_type: str, result: str) -> None:
    WEBHOOK_EVENTS.labels(type=event_type, result=result).inc()


def webhook_event_count_on_commit(*, event_type: str, result: str) -> None:
    """Counted once the transaction that decided it commits (processing: a rolled-back batch is
    processed again, one by one)."""
    transaction.on_commit(partial(webhook_event_count, event_type=event_type, result=result))


def billing_mrr() -> GaugeValues:
    return {(): float(mrr_compute().mrr)}


def billing_in_dunning() -> GaugeValues:
    return {(): float(BillingAccount.objects.filter(payment_failed_at__isnull=False).count())}


def register_billing_gauges() -> None:
    snapshot_gauge_register(
        SnapshotGauge(
            name="leanvibe_billing_mrr_cents",
            documentation="Monthly recurring revenue of every subscription, in cents (USD).",
            labels=(),
            compute=billing_mrr,
        )
    )
    snapshot_gauge_register(
        SnapshotGauge(
            name="leanvibe_tenants_in_dunning",
            documentation="Tenants whose last payment failed and is not yet settled.",
            labels=(),
            compute=billing_in_dunning,
        )
    )
