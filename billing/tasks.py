"""Celery tasks of billing: thin, call services."""

from __future__ import annotations

from celery import shared_task

from billing import services


@shared_task
def usage_flush() -> int:
    """Beat, every minute: closed usage windows from Redis to the ledger. Idempotent, so a
    redelivered or overlapping run counts nothing twice."""
    return services.usage_flush().rows_created
