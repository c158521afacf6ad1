"""The journey steps billing ticks (level 4, Revenue Engineer): each by the real action — a
subscription paid with a card through the API, a Checkout and its webhooks — against the local
Stripe over HTTP, and never by the actions next to it (a trial, a declined card, the trial's $0
invoice)."""

from __future__ import annotations

from io import StringIO

import pytest
import stripe
from django.core import mail
from django.core.management import call_command
from djstripe.models import Invoice as DjstripeInvoice

from billing import services
from billing.models import BillingAccount
from billing.tests.test_subscriptions import trial  # noqa: F401 - the fixture
from billing.tests.test_webhook_processing import _complete_checkout, _deliver, _process
from tenants.journey.models import LevelUnlocked, StepDone
from tenants.journey.services import journey_unlock_email_send
from tenants.tests.journey_helpers import journey_check

pytestmark = pytest.mark.django_db

LEVEL_4 = {"subscription_active", "first_invoice_paid"}


def done(handle) -> set[str]:
    return set(StepDone.objects.filter(tenant_id=handle.tenant.pk).values_list("step", flat=True))


def unlocked(handle) -> set[int]:
    return set(LevelUnlocked.objects.filter(tenant_id=handle.tenant.pk).values_list("number", flat=True))


def _owner(api, handle):
    return {"host": handle.host, "token": handle.login(api)}


def _customer_events(stripe_local, account, *types: str) -> list[dict]:
    return [
        e
        for e in stripe_local.events()
        if e["type"] in types and e["data"]["object"].get("customer") == account.stripe_customer_id
    ]


def test_a_trial_ticks_nothing(trial, client, endpoint, stripe_local):  # noqa: F811
    """The trial subscription (``trialing``) and its $0 invoice, "paid", are no payment: neither
    applying them nor their webhooks tick a step of level 4."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    assert account.status == "trialing"
    events = _customer_events(stripe_local, account, "customer.subscription.created", "invoice.paid")
    zero = [e for e in events if e["type"] == "invoice.paid"]
    assert zero and all(e["data"]["object"]["amount_paid"] == 0 for e in zero)
    triggers = [_deliver(client, event) for event in events]
    assert _process(triggers[0])  # the customer's waiting triggers, together
    assert DjstripeInvoice.objects.filter(id=zero[0]["data"]["object"]["id"]).exists()
    assert not done(trial) & LEVEL_4
    journey_check(trial)


def test_subscribing_with_a_card_ticks_both_steps_and_unlocks_revenue_engineer_once(api, trial):  # noqa: F811
    ctx = _owner(api, trial)
    assert api.get("/api/v1/billing/subscription", **ctx).body["status"] == "trialing"
    assert not done(trial) & LEVEL_4
    response = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "starter", "payment_method_id": "pm_card_visa"}, **ctx
    )
    assert response.status_code == 201, response.body
    assert done(trial) >= LEVEL_4
    invoice_id = str(
        stripe.Subscription.retrieve(
            BillingAccount.objects.get(tenant=trial.tenant).stripe_subscription_id
        ).latest_invoice
    )
    first = StepDone.objects.get(tenant_id=trial.tenant.pk, step="first_invoice_paid")
    paid_at = stripe.Invoice.retrieve(invoice_id).status_transitions.paid_at
    assert int(first.done_at.timestamp()) == paid_at
    # The invoice that ticked the step is in dj-stripe's table before its webhook arrives.
    mirrored = DjstripeInvoice.objects.get(id=invoice_id)
    assert mirrored.stripe_data["status"] == "paid" and mirrored.stripe_data["amount_paid"] == 2_900

    unlock = LevelUnlocked.objects.get(tenant_id=trial.tenant.pk, number=4)
    level = api.get("/api/v1/journey", **ctx).body["levels"][3]
    assert (level["name"], level["badge"]) == ("Revenue Engineer", "💰") and level["unlocked_at"]
    assert [(s["id"], s["done"]) for s in level["steps"]] == [
        ("subscription_active", True),
        ("first_invoice_paid", True),
    ]
    assert level["steps"][0]["help_url"].endswith("/billing/")
    mail.outbox.clear()
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 1
    assert journey_unlock_email_send(unlock_id=unlock.pk) == 0
    [message] = mail.outbox
    assert message.subject == "Achievement unlocked: 💰 Revenue Engineer"
    assert message.to == [trial.owner_email]
    assert "AI Developer" in message.body  # what comes next

    # A change of plan paid at once: a second paid invoice, nothing ticked or unlocked twice.
    changed = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "enterprise", "payment_method_id": "pm_card_visa"}, **ctx
    )
    assert changed.status_code == 201, changed.body
    assert StepDone.objects.filter(tenant_id=trial.tenant.pk, step__in=LEVEL_4).count() == 2
    assert LevelUnlocked.objects.filter(tenant_id=trial.tenant.pk, number=4).count() == 1
    text = journey_check(trial)
    assert "✓ A paid subscription is active" in text and "✓ Its first invoice is paid" in text


@pytest.mark.parametrize("card", ["pm_card_chargeDeclined", "pm_card_chargeCustomerFail"])
def test_a_declined_card_ticks_nothing(api, trial, card):  # noqa: F811
    response = api.post(
        "/api/v1/billing/subscribe",
        {"plan_id": "professional", "payment_method_id": card},
        **_owner(api, trial),
    )
    assert response.status_code == 402
    assert not done(trial) & LEVEL_4
    assert 4 not in unlocked(trial)
    journey_check(trial)


def test_a_checkout_and_its_webhooks_tick_each_step_when_stripe_says_so(
    api,
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
):
    """Without a card the owner pays on Stripe's Checkout page: ``checkout.session.completed``
    makes the new subscription the tenant's (active: one step), and ``invoice.paid`` of its
    first invoice the other."""
    ctx = _owner(api, trial)
    checkout_url = api.post("/api/v1/billing/subscribe", {"plan_id": "starter"}, **ctx).body["checkout_url"]
    assert not done(trial) & LEVEL_4  # a Checkout session is not a payment
    assert _complete_checkout(checkout_url, "4242424242424242") in (302, 303)
    assert _process(_deliver(client, stripe_local.events("checkout.session.completed")[-1]))
    assert "subscription_active" in done(trial)
    assert "first_invoice_paid" not in done(trial)
    assert 4 not in unlocked(trial)

    account = BillingAccount.objects.get(tenant=trial.tenant)
    paid = [
        e
        for e in _customer_events(stripe_local, account, "invoice.paid")
        if e["data"]["object"]["amount_paid"] > 0
    ]
    assert len(paid) == 1
    assert _process(_deliver(client, paid[0]))
    assert done(trial) >= LEVEL_4
    assert 4 in unlocked(trial)
    journey_check(trial)


def test_a_subscription_cancelled_since_keeps_the_step_and_the_check_agrees(api, trial):  # noqa: F811
    """The mirrored subscriptions hold their status now (no history): once the paid one is
    cancelled the records no longer show it active, and the check does not call that a wrong
    tick; the paid invoice stays paid."""
    ctx = _owner(api, trial)
    api.post("/api/v1/billing/subscribe", {"plan_id": "starter", "payment_method_id": "pm_card_visa"}, **ctx)
    account = BillingAccount.objects.get(tenant=trial.tenant)
    stripe.Subscription.cancel(account.stripe_subscription_id)
    services.subscription_sync(subscription_id=account.stripe_subscription_id)
    assert BillingAccount.objects.get(id=account.id).status == "canceled"
    assert done(trial) >= LEVEL_4
    text = journey_check(trial)
    assert "✓ A paid subscription is active" in text


def test_journey_check_finds_payments_made_before_the_journey_and_backfill_ticks_them(
    api,
    trial,  # noqa: F811
):
    ctx = _owner(api, trial)
    api.post("/api/v1/billing/subscribe", {"plan_id": "starter", "payment_method_id": "pm_card_visa"}, **ctx)
    # As for a tenant that paid before the journey existed: its ticks and unlock not there.
    StepDone.objects.filter(tenant_id=trial.tenant.pk, step__in=LEVEL_4).delete()
    LevelUnlocked.objects.filter(tenant_id=trial.tenant.pk, number=4).delete()
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("journey_check", trial.tenant.schema_name, stdout=out)
    assert "✗ A paid subscription is active [subscription_active]  ← the records say done" in out.getvalue()
    assert "✗ Its first invoice is paid [first_invoice_paid]  ← the records say done" in out.getvalue()

    mail.outbox.clear()
    call_command("journey_backfill", trial.tenant.schema_name, stdout=StringIO(), stderr=StringIO())
    assert done(trial) >= LEVEL_4
    unlock = LevelUnlocked.objects.get(tenant_id=trial.tenant.pk, number=4)
    assert unlock.emailed_at is not None and journey_unlock_email_send(unlock_id=unlock.pk) == 0
    assert mail.outbox == []
    journey_check(trial)
