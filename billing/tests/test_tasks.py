"""The provisioning step through a real Celery worker: the customer and the trial are made after
commit, and made later, with backoff, when Stripe is down (the tenant works meanwhile)."""

from __future__ import annotations

import pytest

from billing.models import BillingAccount
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 - the fixture


@pytest.mark.integration
def test_provisioning_makes_the_trial_in_the_worker_and_retries_while_stripe_is_down(
    celery_worker,  # noqa: F811
    stripe_local,
    catalog,
    settings,
    client,
):
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable
    provisioned = tenant_provision(
        organization_name="Initech",
        billing_email="billing@initech.test",
        admin_email="peter@initech.test",
        plan="professional",
        admin_password="correct-horse-battery",
    )
    # The tenant works meanwhile.
    login = client.post(
        "/api/v1/auth/login",
        {"email": "peter@initech.test", "password": "correct-horse-battery"},
        content_type="application/json",
        HTTP_HOST=provisioned.tenant.primary_domain,
    )
    assert login.status_code == 200
    wait_for(lambda: BillingAccount.objects.filter(tenant=provisioned.tenant).exists(), "the first attempt")
    assert not BillingAccount.objects.get(tenant=provisioned.tenant).stripe_customer_id

    settings.STRIPE_API_BASE = stripe_local.url  # Stripe is back: a retry succeeds
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=provisioned.tenant, status="trialing").first(),
        "the trial, made by a retry",
    )
    assert (account.plan, account.access) == ("professional", "ok")
    assert account.stripe_customer_id.startswith("cus_")
