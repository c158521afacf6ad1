"""Celery tasks of accounts: thin, take ids, run in the tenant's schema."""

from __future__ import annotations

from celery import shared_task
from django_tenants.utils import get_public_schema_name, tenant_context

from accounts.exports import services as exports
from tenants.models import Tenant


@shared_task(acks_late=True, reject_on_worker_lost=True)
def data_export_build(tenant_id: str, export_id: str) -> str | None:
    """Write the archive of one export (idempotent: a message delivered twice writes it once)."""
    tenant = Tenant.objects.filter(id=tenant_id).first()
    if tenant is None:
        return None
    with tenant_context(tenant):
        export = exports.data_export_build(tenant=tenant, export_id=export_id)
        return export.status if export is not None else None


@shared_task
def data_exports_sweep() -> int:
    """Beat, hourly: in every tenant, delete the archives past their retention (the rows stay,
    ``expired``), fail the exports whose worker was lost and send the lost messages again."""
    deleted = 0
    for tenant in Tenant.objects.exclude(schema_name=get_public_schema_name()).order_by("created_at"):
        with tenant_context(tenant):
            deleted += exports.data_exports_expire()
            for export_id in exports.data_exports_stuck():
                data_export_build.delay(str(tenant.pk), export_id)
    return deleted
