"""What billing adds to every tenant (``tenants.registry``), registered by ``BillingConfig.ready``:
a provisioning step, after commit, that queues the Stripe customer and trial. With billing off
(no ``STRIPE_SECRET_KEY``) it does nothing, and the tenant keeps the plan it chose."""

from __future__ import annotations

from billing import tasks
from billing.stripe_api import billing_enabled
from tenants.registry import NewTenant, Phase, ProvisioningStep, provisioning_step_register


def stripe_customer_enqueue(new: NewTenant) -> None:
    if billing_enabled():
        tasks.customer_and_trial_create.delay(str(new.tenant.id))


def register() -> None:
    provisioning_step_register(
        ProvisioningStep(
            name="billing.stripe_customer", order=90, run=stripe_customer_enqueue, phase=Phase.AFTER_COMMIT
        )
    )
