"""Celery tasks of billing: thin, take ids, call services. Stripe being down is retried with
backoff; every task is idempotent."""

from __future__ import annotations

import stripe
from celery import shared_task

from billing import dunning, metering, services, webhook_processing
from billing.revenue import revenue_snapshot_take as snapshot_take

_STRIPE_DOWN = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


@shared_task(
    autoretry_for=_STRIPE_DOWN,
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=12,
)
def customer_and_trial_create(tenant_id: str) -> str:
    account = services.customer_and_trial_create(tenant_id=tenant_id)
    return account.stripe_subscription_id if account else ""


@shared_task
def webhook_trigger_process(trigger_id: int) -> bool:
    return webhook_processing.trigger_process(trigger_id=trigger_id)


@shared_task
def webhook_triggers_retry() -> int:
    """Beat: queue again every verified event not processed yet (failed, or never queued)."""
    ids = webhook_processing.triggers_unprocessed()
    for trigger_id in ids:
        webhook_trigger_process.delay(trigger_id)
    return len(ids)


@shared_task
def dunning_sweep() -> int:
    return len(dunning.dunning_sweep(dry_run=False))


@shared_task
def usage_flush() -> int:
    """Beat, every minute: closed usage windows from Redis to the ledger. Idempotent, so a
    redelivered or overlapping run counts nothing twice."""
    return metering.usage_flush().rows_created


@shared_task(autoretry_for=_STRIPE_DOWN, retry_backoff=5, retry_backoff_max=300, max_retries=5)
def usage_report() -> int:
    """Beat, every minute: ledger rows to Stripe as Billing Meter events (idempotent by
    identifier, so an overlapping or retried run bills nothing twice)."""
    return metering.usage_report().reported


@shared_task
def revenue_snapshot_take() -> str:
    """Beat, daily: today's MRR snapshot (run again the same day, the row is updated)."""
    snapshot, _ = snapshot_take()
    return snapshot.date.isoformat()
