"""What billing adds to every tenant (``tenants.registry``), registered by ``BillingConfig.ready``:
a provisioning step, after commit, that queues the Stripe customer and trial (with billing off,
no ``STRIPE_SECRET_KEY``, it does nothing and the tenant keeps the plan it chose); and the API
gate of the payment guard, read in the usage meter's Redis round trip."""

from __future__ import annotations

from billing import access_flags, tasks
from billing.middleware import API_EXEMPT_PREFIXES, payment_required_error
from billing.models import Access
from billing.stripe_api import billing_enabled
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


def register() -> None:
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
