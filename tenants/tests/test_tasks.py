"""Celery tasks of the tenants app: welcome and follow-up emails, the schema pool.

The ``integration`` tests run a real Celery worker (in a thread, on the Redis broker, consuming
this test run's private queue) against committed data, and drop every schema they made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core import mail
from django.db import connection, connections
from django_tenants.utils import schema_exists

from tenants import schemas, tasks
from tenants.models import PooledSchema, Tenant
from tenants.services import ProvisionedTenant, tenant_provision

WAIT_SECONDS = 60


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


def _provision(name: str, email: str) -> ProvisionedTenant:
    return tenant_provision(
        organization_name=name, billing_email=email, admin_email=email, admin_password="correct-horse-battery"
    )


def _pool_names() -> list[str]:
    return list(PooledSchema.objects.order_by("created_at").values_list("schema_name", flat=True))


@pytest.fixture
def celery_worker(transactional_db: None, settings: Any) -> Iterator[Any]:
    """A real worker on this run's queue; afterwards every schema and tenant made here is dropped."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    from leanvibe.celery import app

    settings.FOLLOWUP_EMAIL_DELAY = 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.TENANT_POOL_SIZE = 0
    queue = app.conf.task_default_queue
    assert queue.startswith("lvtest-"), queue  # never consume a real deployment's queue
    assert list(app.amqp.queues) == [queue]

    def close_worker_connections(**_: Any) -> None:
        # Runs in the worker's thread: its connections must not outlive the test database.
        connections.close_all()

    task_postrun.connect(close_worker_connections, weak=False, dispatch_uid="test-close-worker-db")
    schemas_before = _schemas()
    app.control.purge()  # tasks left by earlier transactional tests of this run
    try:
        with start_worker(
            app,
            pool="solo",
            perform_ping_check=False,
            queues=[queue],
            shutdown_timeout=60,
            loglevel="WARNING",
        ) as worker:
            yield worker
    finally:
        task_postrun.disconnect(dispatch_uid="test-close-worker-db")
        app.control.purge()
        for tenant in Tenant.objects.all():
            tenant.delete(force_drop=True)
        PooledSchema.objects.all().delete()
        for leftover in _schemas() - schemas_before:
            schemas.schema_drop(leftover)
        assert _schemas() == schemas_before


@pytest.mark.integration
def test_provisioning_sends_welcome_then_followup_email_through_the_worker(celery_worker):
    provisioned = _provision("Initech", "peter@initech.test")
    welcome = wait_for(lambda: list(mail.outbox), "the welcome email")[0]
    assert welcome.subject == "Welcome to LeanVibe, Initech"

    # Beat's sweep finds the tenant due (delay 0 here) and the worker sends the follow-up.
    tasks.tenant_send_due_followups.delay()
    sent = wait_for(lambda: len(mail.outbox) >= 2 and list(mail.outbox), "the follow-up email")
    followup = sent[1]
    assert followup.subject == "How is Initech getting on with LeanVibe?"
    for message in (welcome, followup):
        assert message.to == ["peter@initech.test"]
        assert "http://initech.localhost:8000/" in message.body
    assert provisioned.tenant.schema_name == "initech"
    provisioned.tenant.refresh_from_db()
    assert provisioned.tenant.followup_sent_at is not None

    # Sent once: another sweep and a duplicate message (as a redelivery would be) send nothing.
    tasks.tenant_send_due_followups.delay()
    tasks.tenant_send_followup_email.delay(str(provisioned.tenant.id))
    tasks.tenant_send_welcome_email.delay(str(provisioned.tenant.id))  # FIFO marker
    wait_for(lambda: len(mail.outbox) >= 3, "the marker email")
    assert [m.subject for m in mail.outbox].count("How is Initech getting on with LeanVibe?") == 1


@pytest.mark.integration
def test_followup_email_is_not_sent_to_a_suspended_tenant(celery_worker):
    from tenants.services import tenant_suspend

    provisioned = _provision("Hooli", "gavin@hooli.test")
    wait_for(lambda: mail.outbox, "the welcome email")
    tenant_suspend(tenant=provisioned.tenant)
    mail.outbox.clear()

    # One worker, one queue, first in first out: the welcome email arrives after the follow-up ran.
    tasks.tenant_send_due_followups.delay()
    tasks.tenant_send_followup_email.delay(str(provisioned.tenant.id))
    tasks.tenant_send_welcome_email.delay(str(provisioned.tenant.id))

    wait_for(lambda: mail.outbox, "the welcome email sent after the follow-up was skipped")
    assert [m.subject for m in mail.outbox] == ["Welcome to LeanVibe, Hooli"]


@pytest.mark.django_db
def test_followup_is_due_only_after_the_delay(settings):
    from datetime import timedelta

    from django.utils import timezone

    from tenants.emails import tenant_ids_due_followup

    settings.FOLLOWUP_EMAIL_DELAY = 3 * 24 * 3600
    young = _provision("Young Co", "y@young.test").tenant
    old = _provision("Old Co", "o@old.test").tenant
    Tenant.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=3, seconds=1))
    assert tenant_ids_due_followup() == [old.id]
    Tenant.objects.filter(id=old.id).update(followup_sent_at=timezone.now())
    assert tenant_ids_due_followup() == []
    assert young.followup_sent_at is None


@pytest.mark.integration
def test_pool_is_filled_by_the_worker_and_used_by_provisioning(celery_worker, settings):
    settings.TENANT_POOL_SIZE = 2
    tasks.schema_pool_refill.delay()
    pool = wait_for(lambda: len(_pool_names()) == 2 and _pool_names(), "two pooled schemas")
    fingerprint = schemas.schema_fingerprint(django_settings.TENANT_TEMPLATE_SCHEMA)
    assert set(PooledSchema.objects.values_list("template_fingerprint", flat=True)) == {fingerprint}
    assert all(schema_exists(name) for name in pool)

    settings.TENANT_POOL_SIZE = 0  # the refill queued by this sign-up must not top the pool up yet
    provisioned = _provision("Pied Piper", "richard@piedpiper.test")

    assert provisioned.schema_source == "pool"
    assert _pool_names() == pool[1:]  # the oldest clone was taken...
    assert not schema_exists(pool[0])  # ...and renamed, not copied
    assert schema_exists("pied-piper")
    assert schemas.schema_fingerprint("pied-piper") == fingerprint
    from django_tenants.utils import schema_context

    from accounts.models import User
    from agents.models import Project

    with schema_context("pied-piper"):
        assert list(User.objects.values_list("email", flat=True)) == ["richard@piedpiper.test"]
        assert list(Project.objects.values_list("name", flat=True)) == ["Welcome"]

    settings.TENANT_POOL_SIZE = 2
    tasks.schema_pool_refill.delay()
    refilled = wait_for(lambda: len(_pool_names()) == 2 and _pool_names(), "the pool topped up again")
    assert refilled[0] == pool[1] and pool[0] not in refilled


def test_stale_pool_entry_is_dropped_by_refill_and_never_claimed(db, settings):
    """A clone of an older template (other migrations) must never become a tenant's schema."""
    schemas.schema_clone_template("pool_stale")
    PooledSchema.objects.create(schema_name="pool_stale", template_fingerprint="0" * 32)

    provisioned = _provision("Vandelay Industries", "art@vandelay.test")

    assert provisioned.schema_source == "clone"
    assert schema_exists("pool_stale") and schema_exists("vandelay-industries")
    assert PooledSchema.objects.filter(schema_name="pool_stale").exists()

    settings.TENANT_POOL_SIZE = 1
    made = tasks.schema_pool_refill.apply().get()

    assert made == 1
    assert not schema_exists("pool_stale")
    fingerprint = schemas.schema_fingerprint(django_settings.TENANT_TEMPLATE_SCHEMA)
    assert list(PooledSchema.objects.values_list("template_fingerprint", flat=True)) == [fingerprint]
    fresh = PooledSchema.objects.get().schema_name
    assert schema_exists(fresh)

    nxt = _provision("Kramerica", "cosmo@kramerica.test")
    assert nxt.schema_source == "pool"
    assert not schema_exists(fresh) and schema_exists("kramerica")


def test_refill_is_idempotent_and_keeps_current_clones(db, settings):
    settings.TENANT_POOL_SIZE = 2
    assert schemas.schema_pool_refill() == 2
    first = _pool_names()
    assert schemas.schema_pool_refill() == 0
    assert _pool_names() == first
