"""Celery tasks of the journey: thin, take ids, call services."""

from __future__ import annotations

from celery import shared_task

from tenants.journey import services


@shared_task
def journey_send_unlock_email(unlock_id: int) -> int:
    return services.journey_unlock_email_send(unlock_id=unlock_id)


@shared_task
def journey_send_unsent_unlock_emails() -> int:
    """Beat: the unlock emails whose message was lost or whose send failed."""
    unsent = services.journey_unsent_unlock_ids()
    for unlock_id in unsent:
        journey_send_unlock_email.delay(unlock_id)
    return len(unsent)
