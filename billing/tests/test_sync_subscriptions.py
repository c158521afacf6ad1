"""``manage.py billing_sync_subscriptions``: after a restore, each tenant's billing state is
read again from Stripe (the local Stripe over HTTP) and applied."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from billing import tasks
from billing.models import BillingAccount


@pytest.fixture
def trial(stripe_local, catalog, make_tenant):
    handle = make_tenant("Trial Org", plan="professional")
    tasks.customer_and_trial_create.apply(args=[handle.id]).get()
    return handle


def test_a_restored_tenants_stale_billing_state_is_read_again_from_stripe(api, trial):
    # The tenant subscribes; then the database goes back to a backup taken before that.
    token = trial.login(api)
    paid = api.post(
        "/api/v1/billing/subscribe",
        {"plan_id": "enterprise", "payment_method_id": "pm_card_visa"},
        host=trial.host,
        token=token,
    )
    assert paid.status_code == 201, paid.body
    account = BillingAccount.objects.get(tenant=trial.tenant)
    subscription_id = account.stripe_subscription_id
    BillingAccount.objects.filter(pk=account.pk).update(status="trialing", plan="professional")

    out = StringIO()
    call_command("billing_sync_subscriptions", stdout=out)
    account.refresh_from_db()
    assert (account.status, account.plan) == ("active", "enterprise")
    assert account.stripe_subscription_id == subscription_id
    assert f"{trial.tenant.schema_name}: trialing/professional/ok → active/enterprise/ok" in out.getvalue()
    assert "1 of 1 subscription(s) synced" in out.getvalue()

    # Again: nothing left to change.
    out = StringIO()
    call_command("billing_sync_subscriptions", trial.tenant.schema_name, stdout=out)
    assert f"{trial.tenant.schema_name}: unchanged" in out.getvalue()


def test_a_subscription_stripe_does_not_know_is_reported_and_fails_the_command(trial):
    BillingAccount.objects.filter(tenant=trial.tenant).update(stripe_subscription_id="sub_gone")
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("billing_sync_subscriptions", stdout=StringIO(), stderr=err)
    assert exited.value.code == 1
    assert trial.tenant.schema_name in err.getvalue()


def test_an_unknown_tenant_or_billing_off_is_refused(trial, settings):
    with pytest.raises(CommandError, match="No organisation"):
        call_command("billing_sync_subscriptions", "no-such-org", stdout=StringIO())
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="billing is off"):
        call_command("billing_sync_subscriptions", stdout=StringIO())
