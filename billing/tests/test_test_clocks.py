"""``BILLING_TEST_CLOCKS`` and ``manage.py billing_test_clock``: each new customer on its own clock
in test mode, never with a live key; advancing applies the clock's time to the tenant."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import stripe
from django.core.management import CommandError, call_command

from billing import services
from billing.models import Access, BillingAccount
from billing.stripe_api import clocks_on


def test_clocks_only_in_test_mode(settings) -> None:
    settings.BILLING_TEST_CLOCKS = True
    settings.STRIPE_SECRET_KEY = "sk_test_x"
    settings.STRIPE_LIVE_MODE = False
    assert clocks_on()
    settings.STRIPE_SECRET_KEY = "sk_live_x"
    assert not clocks_on()
    settings.STRIPE_SECRET_KEY = "rk_test_x"
    settings.STRIPE_LIVE_MODE = True
    assert not clocks_on()
    settings.STRIPE_LIVE_MODE = False
    settings.BILLING_TEST_CLOCKS = False
    assert not clocks_on()


def test_without_the_setting_customers_are_on_no_clock(tenant_a, stripe_local, catalog):
    account = services.customer_and_trial_create(tenant_id=tenant_a.tenant.id)
    assert account is not None
    assert (account.stripe_test_clock_id, account.test_clock_time) == ("", None)
    assert stripe.Customer.retrieve(account.stripe_customer_id).test_clock is None
    assert not stripe.test_helpers.TestClock.list().data


def test_the_command_advances_the_clock_through_the_trial_end(tenant_a, stripe_local, catalog, settings):
    settings.BILLING_TEST_CLOCKS = True
    account = services.customer_and_trial_create(tenant_id=tenant_a.tenant.id)
    assert account is not None
    account.refresh_from_db()
    assert account.stripe_test_clock_id and account.status == "trialing"
    clock = stripe.test_helpers.TestClock.retrieve(account.stripe_test_clock_id)
    assert stripe.Customer.retrieve(account.stripe_customer_id).test_clock == clock.id
    start = account.test_clock_time
    assert start is not None and int(start.timestamp()) == clock.frozen_time

    with pytest.raises(CommandError, match="only moves forward"):
        call_command("billing_test_clock", tenant_a.tenant.schema_name, "--to", "2001-01-01T00:00")
    with pytest.raises(CommandError, match="number and d, h or m"):
        call_command("billing_test_clock", tenant_a.tenant.schema_name, "--advance", "two weeks")

    out = StringIO()
    call_command("billing_test_clock", tenant_a.tenant.schema_name, "--advance", "15d", stdout=out)
    account = BillingAccount.objects.get(id=account.id)
    assert account.test_clock_time == start + timedelta(days=15)
    assert stripe.test_helpers.TestClock.retrieve(clock.id).frozen_time == clock.frozen_time + 15 * 86400
    # No webhook endpoint here: the command re-read the subscription itself.
    assert (account.status, account.access) == ("paused", Access.PAYMENT_REQUIRED)
    assert "starter paused, access payment_required" in out.getvalue()


def test_the_command_refuses_a_tenant_on_no_clock(tenant_a, stripe_local, catalog):
    services.customer_and_trial_create(tenant_id=tenant_a.tenant.id)
    with pytest.raises(CommandError, match="not on a test clock"):
        call_command("billing_test_clock", tenant_a.tenant.schema_name, "--advance", "1d")
    with pytest.raises(CommandError, match="No organisation"):
        call_command("billing_test_clock", "no-such-org", "--advance", "1d")
