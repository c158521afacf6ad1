"""What billing adds to every tenant (``tenants.registry``), registered by ``BillingConfig.ready``:
a provisioning step, after commit, that queues the Stripe customer and trial (with billing off,
no ``STRIPE_SECRET_KEY``, it does nothing and the tenant keeps the plan it chose); and the API
gate of the payment guard, read in the usage meter's Redis round trip; and the public rows that
move with a tenant (``tenants.moves``)."""

from __future__ import annotations

import time
from typing import Any

from djstripe.models import Customer as DjstripeCustomer

from billing import access_flags, tasks
from billing.middleware import API_EXEMPT_PREFIXES, payment_required_error
from billing.models import Access, BillingAccount, UsageRecord
from billing.stripe_api import billing_enabled
from leanvibe.platform.checks import CheckSkipped, PlatformCheck, platform_check_register
from tenants.registry import (
    ApiGate,
    NewTenant,
    Phase,
    ProvisioningStep,
    TenantPublicRows,
    TenantRename,
    api_gate_register,
    provisioning_step_register,
    tenant_public_rows_register,
)

_WRITES_CLOSED = frozenset({Access.PAYMENT_REQUIRED.value, Access.SUSPENDED.value})
_ALL_CLOSED = frozenset({Access.SUSPENDED.value})


def payment_gate_closes(method: str) -> frozenset[str]:
    """Reads pass while payment is required (members read and export); writes do not. A
    tenant suspended for non-payment is closed to every API call."""
    return _ALL_CLOSED if method in ("GET", "HEAD", "OPTIONS") else _WRITES_CLOSED


def stripe_customer_enqueue(new: NewTenant) -> None:
    if billing_enabled():
        tasks.customer_and_trial_create.delay(str(new.tenant.id))


def stripe_check() -> str:
    """``check_platform``: Stripe answers with our key, and the webhook endpoint is configured."""
    import stripe
    from django.conf import settings

    from billing.webhooks import webhook_endpoint_current

    if not billing_enabled():
        raise CheckSkipped("billing is off (no STRIPE_SECRET_KEY)")
    started = time.perf_counter()
    stripe.Product.list(limit=1)
    latency = (time.perf_counter() - started) * 1000
    endpoint = webhook_endpoint_current()
    if endpoint is None or not endpoint.secret:
        raise RuntimeError(
            "Stripe answers, but no webhook endpoint is configured (manage.py billing_webhook_setup)"
        )
    where = (
        "local Stripe"
        if "127.0.0.1" in settings.STRIPE_API_BASE or "localhost" in settings.STRIPE_API_BASE
        else "Stripe"
    )
    return f"{where} answered in {latency:.0f} ms; webhook endpoint {endpoint.id}"


# --- what moves with a tenant (tenant_export / tenant_import) ----------------------------------
# In: its billing account, its usage ledger, and the link of its dj-stripe Customer (the mirror
# row naming it as subscriber). Out: the rest of dj-stripe's mirror (subscriptions, invoices,
# payment methods, events...): Stripe holds them and a sync brings them back; what the Customer
# row points at that is not in the target database is left empty until then.


def billing_account_copy(row: BillingAccount, rename: TenantRename) -> BillingAccount:
    """A renamed copy is a new customer for Stripe: the original keeps the subscription."""
    row.stripe_customer_id = row.stripe_subscription_id = row.stripe_test_clock_id = ""
    return row


def usage_record_copy(row: UsageRecord, rename: TenantRename) -> UsageRecord:
    """Idempotency keys begin with the tenant's id (unique platform-wide): the copy's with its own."""
    old = str(rename.old_id)
    if row.idempotency_key.startswith(old):
        row.idempotency_key = str(rename.new_id) + row.idempotency_key[len(old) :]
    return row


def stripe_customer_link_put(row: DjstripeCustomer, tenant: Any) -> str:
    """The mirror row may be here already (the same Stripe account): link it, unless it is
    another tenant's."""
    existing = DjstripeCustomer.objects.filter(id=row.id).values_list("djstripe_id", "subscriber_id").first()
    if existing is None:
        row.save_base(raw=True, force_insert=True)
        return "inserted"
    if existing[1] not in (None, tenant.pk):
        return "skipped (another tenant's here)"
    DjstripeCustomer.objects.filter(djstripe_id=existing[0]).update(subscriber_id=tenant.pk)
    return "linked"


def register() -> None:
    tenant_public_rows_register(
        TenantPublicRows(model=BillingAccount, tenant_field="tenant", order=20, copy=billing_account_copy)
    )
    tenant_public_rows_register(
        TenantPublicRows(model=UsageRecord, tenant_field="tenant", order=30, copy=usage_record_copy)
    )
    tenant_public_rows_register(
        TenantPublicRows(
            model=DjstripeCustomer,
            tenant_field="subscriber",
            order=40,
            # The Stripe customer stays the original's: a renamed copy subscribes anew.
            copy=lambda row, rename: None,
            put=stripe_customer_link_put,
        )
    )
    platform_check_register(PlatformCheck(name="stripe", run=stripe_check, order=70))
    provisioning_step_register(
        ProvisioningStep(
            name="billing.stripe_customer", order=90, run=stripe_customer_enqueue, phase=Phase.AFTER_COMMIT
        )
    )
    api_gate_register(
        ApiGate(
            name="billing.payment",
            key=access_flags.access_key,
            closes=payment_gate_closes,
            refuse=payment_required_error,
            exempt_prefixes=API_EXEMPT_PREFIXES,
        )
    )
