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
    tenant = Tenant.objects.filter(id=tenant_id, status=Tenant.Status.ACTIVE).first()
    return emails.send_followup_email(tenant) if tenant else 0


@shared_task
def schema_pool_refill() -> int:
    return schemas.schema_pool_refill()
