"""What billing adds to every tenant (``tenants.registry``), registered by ``BillingConfig.ready``:
a provisioning step, after commit, that queues the Stripe customer and trial (with billing off,
no ``STRIPE_SECRET_KEY``, it does nothing and the tenant keeps the plan it chose); and the API
gate of the payment guard, read in the usage meter's Redis round trip."""

from __future__ import annotations

import time

from billing import access_flags, tasks
from billing.middleware import API_EXEMPT_PREFIXES, payment_required_error
from billing.models import Access
from billing.stripe_api import billing_enabled
from leanvibe.platform.checks import CheckSkipped, PlatformCheck, platform_check_register
from tenants.registry import (
    ApiGate,
    NewTenant,
    Phase,
    ProvisioningStep,
    api_gate_register,
    provisioning_step_register,
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


def register() -> None:
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
