"""Celery tasks of the agents: thin, take ids, run in the tenant's schema.

``agent_task_run`` is routed to the ``AGENTS_CELERY_QUEUE`` queue (``CELERY_TASK_ROUTES``).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django_tenants.utils import tenant_context

from agents import pipeline
from tenants.models import Tenant

logger = logging.getLogger(__name__)


def _dispatch(tenant: Tenant) -> int:
    """One message per queued task a free slot could start now."""
    startable = pipeline.tasks_startable(tenant=tenant)
    for task_id in startable:
        agent_task_run.delay(str(tenant.id), str(task_id))
    return len(startable)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def agent_task_run(tenant_id: str, task_id: str) -> str | None:
    """Start the tenant's oldest queued task if its plan has a free slot (``task_id`` is the task
    this message was sent for; an older queued one goes first), run it to its end, then send a
    message for each task the freed slot lets start. Idempotent: with no free slot or nothing
    queued it does nothing."""
    tenant = Tenant.objects.filter(id=tenant_id).first()
    if tenant is None:
        return None
    with tenant_context(tenant):
        task = pipeline.task_claim(tenant=tenant)
        if task is None:
            return None
        if str(task.id) != task_id:
            logger.info("message for task %s started the older task %s", task_id, task.id)
        pipeline.task_execute(tenant=tenant, task=task)
        _dispatch(tenant)
        return task.status


@shared_task
def agent_tasks_sweep() -> int:
    """Beat, every minute: in every tenant, requeue (once) or fail tasks whose worker stopped
    sending heartbeats, and send a message for every queued task a free slot could start (a
    message lost with its worker is sent again)."""
    sent = 0
    for tenant in Tenant.objects.exclude(schema_name="public").order_by("created_at"):
        with tenant_context(tenant):
            pipeline.tasks_lost_sweep()
            sent += _dispatch(tenant)
    return sent
