"""Customers, trials and the owners' subscription API, over HTTP against the local Stripe."""

from __future__ import annotations

from datetime import timedelta

import pytest
import stripe
from django.utils import timezone
from django_tenants.utils import schema_context
from djstripe.models import Coupon as DjstripeCoupon
from djstripe.models import Customer as DjstripeCustomer
from djstripe.models import Discount as DjstripeDiscount
from djstripe.models import Subscription as DjstripeSubscription

from accounts.models import Role
from accounts.services import user_create
from billing import revenue, services, tasks
from billing.models import BillingAccount
from billing.services import price_for
from tenants.periods import billing_period


@pytest.fixture
def trial(stripe_local, catalog, make_tenant, django_capture_on_commit_callbacks):
    """A new professional tenant whose provisioning step ran (its task run here, in process)."""
    handle = make_tenant("Trial Org", plan="professional")
    tasks.customer_and_trial_create.apply(args=[handle.id]).get()
    return handle


def _owner(api, handle):
    return {"host": handle.host, "token": handle.login(api)}


def test_new_tenant_gets_a_customer_and_a_card_less_trial_that_pauses(trial, stripe_local):
    account = BillingAccount.objects.get(tenant=trial.tenant)
    assert account.stripe_customer_id and account.stripe_subscription_id
    assert (account.status, account.plan, account.interval, account.access) == (
        "trialing",
        "professional",
        "month",
        "ok",
    )
    assert account.trial_end is not None
    assert abs(account.trial_end - (timezone.now() + timedelta(days=14))) < timedelta(minutes=5)
    customer = stripe.Customer.retrieve(account.stripe_customer_id)
    assert customer.email == trial.tenant.billing_email
    assert customer.metadata is not None and customer.metadata["tenant_id"] == trial.id
    sub = stripe.Subscription.retrieve(account.stripe_subscription_id)
    assert sub.trial_settings is not None
    assert sub.trial_settings.end_behavior.missing_payment_method == "pause"
    assert sub.default_payment_method is None
    assert DjstripeCustomer.objects.get(id=account.stripe_customer_id).subscriber == trial.tenant

    # Run again (a redelivered task): nothing new at Stripe.
    tasks.customer_and_trial_create.apply(args=[trial.id]).get()
    assert len(stripe.Customer.list(limit=100).data) == 1
    assert len(stripe.Subscription.list(customer=account.stripe_customer_id, status="all").data) == 1


def test_without_stripe_billing_is_off_and_provisioning_skips_it(
    make_tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        handle = make_tenant("No Billing")
    assert not BillingAccount.objects.filter(tenant=handle.tenant).exists()
    assert tasks.customer_and_trial_create.apply(args=[handle.id]).get() == ""


def test_subscription_read_by_members(api, trial):
    body = api.get("/api/v1/billing/subscription", **_owner(api, trial)).body
    assert set(body) >= {
        "plan",
        "interval",
        "status",
        "trial_end",
        "current_period_end",
        "cancel_at_period_end",
        "payment_method",
    }
    assert (body["plan"], body["status"], body["payment_method"]) == ("professional", "trialing", None)


def test_subscribe_with_a_card_starts_paying_now(api, trial):
    ctx = _owner(api, trial)
    response = api.post(
        "/api/v1/billing/subscribe",
        {"plan_id": "enterprise", "interval": "year", "payment_method_id": "pm_card_visa"},
        **ctx,
    )
    assert response.status_code == 201, response.body
    body = response.body
    assert (body["plan"], body["interval"], body["status"]) == ("enterprise", "year", "active")
    assert body["payment_method"] == {"brand": "visa", "last4": "4242"}
    trial.tenant.refresh_from_db()
    assert trial.tenant.plan == "enterprise"
    # Usage periods now start when the paid subscription's do (a new count from now).
    anchor = stripe.Subscription.retrieve(
        BillingAccount.objects.get(tenant=trial.tenant).stripe_subscription_id
    ).billing_cycle_anchor
    assert trial.tenant.billing_cycle_anchor is not None
    assert int(trial.tenant.billing_cycle_anchor.timestamp()) == anchor
    period = billing_period(trial.tenant)
    assert period.anchored and int(period.start.timestamp()) == anchor
    invoices = api.get("/api/v1/billing/invoices", **ctx).body["results"]
    assert invoices and invoices[0]["status"] == "paid" and invoices[0]["amount_paid"] == 499_000
    assert set(invoices[0]) >= {"number", "amount_due", "period", "hosted_invoice_url", "invoice_pdf"}


@pytest.mark.parametrize("card", ["pm_card_chargeDeclined", "pm_card_chargeCustomerFail"])
def test_a_declined_card_is_402_and_changes_nothing(api, trial, card):
    response = api.post(
        "/api/v1/billing/subscribe",
        {"plan_id": "professional", "payment_method_id": card},
        **_owner(api, trial),
    )
    assert response.status_code == 402
    assert response.body["error"] == "card_declined"
    account = BillingAccount.objects.get(tenant=trial.tenant)
    assert account.plan == "professional"
    assert account.access == "ok"


def test_subscribe_without_a_card_is_a_checkout_session_on_the_tenants_host(api, trial, stripe_local):
    response = api.post("/api/v1/billing/subscribe", {"plan_id": "starter"}, **_owner(api, trial))
    assert response.status_code == 200, response.body
    assert response.body["checkout_url"].startswith(stripe_local.url)
    session = stripe.checkout.Session.list(limit=1).data[0]
    assert session.mode == "subscription"
    assert str(session.success_url).startswith(f"http://{trial.host}:8000/billing/")


def test_members_read_but_only_owners_manage(api, trial):
    with schema_context(trial.tenant.schema_name):
        user_create(email="member@example.com", password=trial.password, role=Role.MEMBER)
        user_create(email="admin@example.com", password=trial.password, role=Role.ADMIN)
    for email in ("member@example.com", "admin@example.com"):
        ctx = {"host": trial.host, "token": trial.login(api, email=email)}
        assert api.get("/api/v1/billing/subscription", **ctx).status_code == 200
        assert api.get("/api/v1/billing/invoices", **ctx).status_code == 200
        for path, data in [
            ("/api/v1/billing/subscribe", {"plan_id": "starter", "payment_method_id": "pm_card_visa"}),
            ("/api/v1/billing/subscription/change", {"plan_id": "starter"}),
            ("/api/v1/billing/subscription/cancel", None),
            ("/api/v1/billing/subscription/resume", None),
            ("/api/v1/billing/portal", None),
        ]:
            assert api.post(path, data, **ctx).status_code == 403, path
    assert BillingAccount.objects.get(tenant=trial.tenant).plan == "professional"


def test_change_cancel_resume_portal_and_upcoming_invoice(api, trial):
    ctx = _owner(api, trial)
    paid = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "professional", "payment_method_id": "pm_card_visa"}, **ctx
    )
    assert paid.status_code == 201, paid.body
    changed = api.post("/api/v1/billing/subscription/change", {"plan_id": "enterprise"}, **ctx)
    assert changed.status_code == 200, changed.body
    assert changed.body["plan"] == "enterprise"
    trial.tenant.refresh_from_db()
    assert trial.tenant.plan == "enterprise"

    upcoming = api.get("/api/v1/billing/invoices/upcoming", **ctx)
    assert upcoming.status_code == 200, upcoming.body
    assert upcoming.body["lines"]
    assert {"description", "amount", "quantity", "period"} <= set(upcoming.body["lines"][0])

    canceled = api.post("/api/v1/billing/subscription/cancel", **ctx)
    assert canceled.status_code == 200 and canceled.body["cancel_at_period_end"] is True
    resumed = api.post("/api/v1/billing/subscription/resume", **ctx)
    assert resumed.status_code == 200 and resumed.body["cancel_at_period_end"] is False
    assert api.post("/api/v1/billing/subscription/resume", **ctx).status_code == 409

    portal = api.post("/api/v1/billing/portal", **ctx)
    assert portal.status_code == 200 and portal.body["url"].startswith("http://127.0.0.1")


def test_bad_input_is_400_never_500(api, trial):
    ctx = _owner(api, trial)
    for data in [
        {},
        {"plan_id": "gold"},
        {"plan_id": "starter", "interval": "week"},
        {"plan_id": 3},
        {"plan_id": "starter", "payment_method_id": "pm card"},
        {"plan_id": "starter", "extra": 1},
        [],
    ]:
        assert api.post("/api/v1/billing/subscribe", data, **ctx).status_code == 400, data
        assert api.post("/api/v1/billing/subscription/change", data, **ctx).status_code == 400, data
    assert api.post("/api/v1/billing/subscription/cancel", {"now": True}, **ctx).status_code == 400
    assert api.post("/api/v1/billing/subscribe", raw="{bad", **ctx).status_code == 400


def test_plans_are_public_on_both_hosts(api, tenant_a):
    for ctx in ({}, {"host": tenant_a.host}):
        response = api.get("/api/v1/billing/plans", **ctx)
        assert response.status_code == 200
        plans = {p["id"]: p for p in response.body}
        assert list(plans) == ["starter", "professional", "enterprise"]
    starter, enterprise = plans["starter"], plans["enterprise"]
    assert starter["prices"] == {
        "month": {"amount": 2900, "currency": "usd"},
        "year": {"amount": 29000, "currency": "usd"},
    }
    assert starter["limits"] == {
        "projects": 5,
        "users": 3,
        "api_calls": 10000,
        "ai_requests": 100,
        "storage_gb": 1,
    }
    assert starter["overage"] == {"policy": "block", "grace_percent": 0, "unit_prices": {}}
    assert plans["professional"]["overage"]["grace_percent"] == 10
    assert enterprise["overage"] == {
        "policy": "charge",
        "grace_percent": 0,
        "unit_prices": {"api_calls": "0.01", "ai_requests": "2"},
    }
    assert enterprise["limits"]["projects"] is None and enterprise["limits"]["storage_gb"] is None
    assert enterprise["features"]


def test_a_coupon_is_in_the_stored_subscription_right_after_the_re_read(trial):
    """A subscription made with a coupon (the Dashboard, a sales deal): the re-read that its
    ``customer.subscription.created`` event runs stores the discount whole, so it shows (and
    counts in MRR) before any invoice is synced, which is what makes dj-stripe's Discount rows."""
    coupon = stripe.Coupon.create(id="LAUNCH20", percent_off=20, duration="forever")
    DjstripeCoupon.sync_from_stripe_data(coupon)  # as dj-stripe's coupon.created handler does
    account = BillingAccount.objects.get(tenant=trial.tenant)
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=account.stripe_customer_id)
    sub = stripe.Subscription.create(
        customer=account.stripe_customer_id,
        items=[{"price": price_for("leanvibe_professional_month")["id"]}],
        default_payment_method=card.id,
        discounts=[{"coupon": coupon.id}],
        metadata={"tenant_id": trial.id, "plan": "professional"},
    )

    synced = services.subscription_sync(subscription_id=sub.id)
    assert synced is not None and (synced.stripe_subscription_id, synced.status) == (sub.id, "active")
    stored = DjstripeSubscription.objects.get(id=sub.id).stripe_data["discounts"]
    assert len(stored) == 1 and stored[0]["object"] == "discount"
    assert stored[0]["source"] == {"coupon": "LAUNCH20", "type": "coupon"}
    assert stored[0]["subscription"] == sub.id
    assert not DjstripeDiscount.objects.exists()  # no invoice synced: nothing to resolve an id with
    # The trial (trialing) counts 0; this one 9900 less 20 %.
    assert revenue.revenue_analytics(now=timezone.now())["mrr"] == 7920


def test_an_older_live_subscription_never_takes_the_tenant_back(trial, stripe_local):
    """Two live subscriptions of one customer (a Checkout one and the trial it is about to
    replace): the newer one's event is adopted, a late event of the older one changes nothing."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    trial_id = account.stripe_subscription_id
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=account.stripe_customer_id)
    newer = stripe.Subscription.create(
        customer=account.stripe_customer_id,
        items=[{"price": price_for("leanvibe_enterprise_month")["id"]}],
        default_payment_method=card.id,
        metadata={"tenant_id": str(trial.id)},
    )
    assert services.subscription_sync(subscription_id=newer.id) is not None
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.plan) == (newer.id, "enterprise")

    assert stripe.Subscription.retrieve(trial_id).status == "trialing"  # still live at Stripe
    assert services.subscription_sync(subscription_id=trial_id) is None
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.plan, account.status) == (
        newer.id,
        "enterprise",
        "active",
    )
