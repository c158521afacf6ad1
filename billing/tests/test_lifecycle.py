"""A tenant's whole billing life on a Stripe test clock, end to end: the local Stripe (spoken to
by the real ``stripe`` library and dj-stripe) sends signed webhooks to the live server, a real
Celery worker processes them, and the clock is advanced from outside, as Stripe's dashboard or
CLI would: trial end without a card (paused, writes refused), a paid subscription, metered
overage billed on the renewal, a failed payment, the dunning emails on days 0, 3 and 7,
suspension after the grace period, and recovery when the invoice is paid.

``BILLING_TEST_CLOCKS`` puts each new customer on its own clock; the platform's billing time for
that tenant follows the clock (``test_helpers.test_clock.ready``), so the grace period and the
reminder days are counted in simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import stripe
from django.core import mail
from django.core.management import call_command

from billing.catalog import catalog_sync
from billing.models import Access, BillingAccount, UsageRecord
from billing.stripe_local import StripeLocal
from tenants.models import Tenant
from tenants.plans import SPECS, Interval
from tenants.services import tenant_provision
from tenants.tests.test_tasks import celery_worker, wait_for  # noqa: F401 (the fixture)

API_KEY = "sk_test_LeanVibeLifecycle0123456789"
PASSWORD = "correct-horse-battery-staple"
BILLING_EMAIL = "billing@hooli.test"
WAIT = 90


@pytest.fixture
def stripe_unpaid(settings: Any) -> Iterator[StripeLocal]:
    """The local Stripe set as many accounts are: when the last retry fails, the subscription
    becomes ``unpaid`` and its invoice stays open (paying it revives the subscription)."""
    with StripeLocal(retry_delays=(0.2, 0.5, 1), after_final_payment_failure="unpaid") as server:
        settings.STRIPE_SECRET_KEY = API_KEY
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_METER_EVENTS_API_BASE = server.url
        settings.BILLING_TEST_CLOCKS = True
        yield server


def _account(tenant: Tenant) -> BillingAccount:
    return BillingAccount.objects.get(tenant=tenant)


def _advance(account: BillingAccount, to: Any) -> None:
    """Move the clock as Stripe's dashboard would; our side learns of it by webhook only."""
    stripe.test_helpers.TestClock.advance(account.stripe_test_clock_id, frozen_time=int(to.timestamp()))
    wait_for(
        lambda: _account(account.tenant).test_clock_time == to.replace(microsecond=0),
        f"the clock's time ({to:%Y-%m-%d %H:%M}) to reach the platform",
        timeout=WAIT,
    )


def _reminders() -> list[Any]:
    return [m for m in mail.outbox if m.to == [BILLING_EMAIL] and "Payment failed" in m.subject]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_trial_overage_failed_payment_dunning_suspension_and_recovery_on_a_test_clock(
    celery_worker,  # noqa: F811
    live_server,
    stripe_unpaid,
    api,
):
    catalog_sync()
    port = live_server.url.rsplit(":", 1)[1]
    call_command(
        "billing_webhook_setup", "--url", f"http://127.0.0.1:{port}/stripe/webhook/", stdout=StringIO()
    )
    tenant = tenant_provision(
        organization_name="Hooli",
        billing_email=BILLING_EMAIL,
        admin_email="gavin@hooli.test",
        plan="enterprise",
        admin_password=PASSWORD,
    ).tenant
    host = tenant.primary_domain

    # Provisioning: the worker makes the customer on its own clock and a 14-day trial.
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="trialing").first(), "the trial", WAIT
    )
    assert account.stripe_test_clock_id.startswith("clock_")
    customer = stripe.Customer.retrieve(account.stripe_customer_id)
    assert customer.test_clock == account.stripe_test_clock_id
    t0 = account.test_clock_time
    assert t0 is not None and account.trial_end == t0 + timedelta(days=14)
    token = api.post(
        "/api/v1/auth/login", {"email": "gavin@hooli.test", "password": PASSWORD}, host=host
    ).body["access_token"]

    names = iter(range(1, 100))

    def write() -> Any:
        return api.post("/api/v1/projects", {"name": f"Project {next(names)}"}, host=host, token=token)

    assert write().status_code == 201

    # Day 15: the trial ended without a card. Paused: reads pass, writes answer 402.
    _advance(account, t0 + timedelta(days=15))
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="paused").first(), "the pause", WAIT
    )
    assert account.access == Access.PAYMENT_REQUIRED
    refused = write()
    assert (refused.status_code, refused.body["error"]) == (402, "payment_required")
    assert api.get("/api/v1/projects", host=host, token=token).status_code == 200

    # The owner subscribes with a card: active at once, writes work again.
    subscribed = api.post(
        "/api/v1/billing/subscribe",
        {"plan_id": "enterprise", "interval": "month", "payment_method_id": "pm_card_visa"},
        host=host,
        token=token,
    )
    assert subscribed.status_code == 201, subscribed.body
    assert subscribed.body["status"] == "active"
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="active", access=Access.OK).first(),
        "the paid subscription",
        WAIT,
    )
    assert write().status_code == 201
    period_end = account.current_period_end
    assert period_end is not None and period_end > t0 + timedelta(days=40)

    # Usage past what the plan includes, reported to Stripe's meter (at the clock's time).
    included = SPECS["enterprise"].limits.ai_requests
    unit = SPECS["enterprise"].overage.unit_prices["ai_requests"]
    assert included is not None
    used = api.post(
        "/api/v1/billing/usage",
        {"metric_name": "ai_requests", "quantity": included + 500, "idempotency_key": "batch-1"},
        host=host,
        token=token,
    )
    assert used.status_code == 201, used.body
    assert (used.body["overage"], used.body["status"]) == (500, "overage")
    from billing import tasks

    tasks.usage_report.delay()
    wait_for(
        lambda: not UsageRecord.objects.filter(tenant=tenant, reported_at__isnull=True).exists(),
        "the usage report",
        WAIT,
    )

    # The upcoming invoice shows the plan and the overage (500 past the included amount).
    plan_cents = SPECS["enterprise"].prices[Interval.MONTH]
    overage_cents = int(500 * unit)
    upcoming = api.get("/api/v1/billing/invoices/upcoming", host=host, token=token)
    assert upcoming.status_code == 200, upcoming.body
    assert upcoming.body["amount_due"] == plan_cents + overage_cents

    # The card starts failing before the renewal.
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=account.stripe_customer_id)
    stripe.Customer.modify(
        account.stripe_customer_id, invoice_settings={"default_payment_method": failing.id}
    )
    stripe.Subscription.modify(account.stripe_subscription_id, default_payment_method=failing.id)

    # Renewal: the invoice carries the plan and the overage, and its payment fails. Day 0.
    renewal_at = period_end + timedelta(hours=1)
    _advance(account, renewal_at)
    account = wait_for(
        lambda: (
            BillingAccount.objects.filter(tenant=tenant, status="past_due")
            .exclude(payment_failed_at=None)
            .first()
        ),
        "the failed renewal",
        WAIT,
    )
    assert period_end <= account.payment_failed_at <= renewal_at  # Stripe's time, not the wall clock's
    assert account.access == Access.OK  # the grace period has begun
    invoices = api.get("/api/v1/billing/invoices", host=host, token=token).body
    renewal = invoices["results"][0]
    assert renewal["status"] == "open"
    assert (renewal["amount_due"], renewal["amount_paid"]) == (plan_cents + overage_cents, 0)
    lines = stripe.Invoice.retrieve(renewal["id"]).lines.data
    # The plan, the ai_requests overage, and api_calls (metered too, none used: 0).
    assert sorted(line.amount for line in lines) == sorted([plan_cents, overage_cents, 0])
    wait_for(lambda: len(_reminders()) == 1, "the day-0 reminder", WAIT)
    assert write().status_code == 201  # past due, within the grace period: still working

    # Days 3 and 7: one reminder each (Stripe's retries fail too); still within the grace period.
    _advance(account, account.payment_failed_at + timedelta(days=3, hours=1))
    wait_for(lambda: len(_reminders()) == 2, "the day-3 reminder", WAIT)
    _advance(account, account.payment_failed_at + timedelta(days=7, hours=1))
    wait_for(lambda: len(_reminders()) == 3, "the day-7 reminder", WAIT)
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="unpaid").first(),
        "the final failure",
        WAIT,
    )
    assert account.access == Access.OK and account.suspended_at is None
    assert len(_reminders()) == 3  # each day's reminder went out once

    # Day 14: the grace period is over. Suspended: every API call but billing answers 402.
    _advance(account, account.payment_failed_at + timedelta(days=14, hours=1))
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, access=Access.SUSPENDED).first(),
        "suspension",
        WAIT,
    )
    assert account.suspended_at is not None
    refused = api.get("/api/v1/projects", host=host, token=token)
    assert (refused.status_code, refused.body["error"]) == (402, "payment_required")
    assert api.get("/api/v1/billing/subscription", host=host, token=token).status_code == 200

    # Recovery: a working card, the open invoice paid (as the portal does). Restored at once.
    working = stripe.PaymentMethod.attach("pm_card_visa", customer=account.stripe_customer_id)
    stripe.Customer.modify(
        account.stripe_customer_id, invoice_settings={"default_payment_method": working.id}
    )
    stripe.Subscription.modify(account.stripe_subscription_id, default_payment_method=working.id)
    paid = stripe.Invoice.pay(renewal["id"])
    assert paid.status == "paid"
    account = wait_for(
        lambda: BillingAccount.objects.filter(tenant=tenant, status="active", access=Access.OK).first(),
        "the recovery",
        WAIT,
    )
    assert (account.payment_failed_at, account.suspended_at, account.plan) == (None, None, "enterprise")
    assert write().status_code == 201
    assert len(_reminders()) == 3  # no reminder after recovery
