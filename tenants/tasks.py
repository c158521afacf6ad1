"""Celery tasks of the tenants app: thin, take ids, call services."""

from __future__ import annotations

from celery import shared_task

from tenants import emails, schemas
from tenants.models import Tenant


@shared_task
def tenant_send_welcome_email(tenant_id: str) -> int:
    tenant = Tenant.objects.filter(id=tenant_id).first()
    return emails.send_welcome_email(tenant) if tenant else 0


@shared_task
def tenant_send_followup_email(tenant_id: str) -> int:
    return emails.tenant_send_followup(tenant_id=tenant_id)


@shared_task
def tenant_send_due_followups() -> int:
    """Beat, hourly: queue the follow-up of every tenant whose delay has passed. A sweep rather
    than one long-countdown message per sign-up: Redis redelivers unacknowledged messages after
    its visibility timeout, so a three-day ETA would be delivered many times over."""
    due = emails.tenant_ids_due_followup()
    for tenant_id in due:
        tenant_send_followup_email.delay(str(tenant_id))
    return len(due)


@shared_task
def schema_pool_refill() -> int:
    return schemas.schema_pool_refill()
