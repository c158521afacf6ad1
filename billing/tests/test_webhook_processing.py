"""Verified events, processed as the worker processes them: Stripe's own events (from the local
Stripe), signed and posted to ``/stripe/webhook/``, then ``billing.tasks.webhook_trigger_process``
run in process. Duplicates are processed once, reordered events converge on Stripe's current
object, a failure is recorded and retried by the sweep."""

from __future__ import annotations

import http.client
import json
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import stripe
from django.test import Client
from djstripe.models import Event, WebhookEventTrigger

from billing import tasks, webhook_processing
from billing.models import BillingAccount
from billing.tests.fixtures import WEBHOOK_SECRET
from billing.tests.stripe_fixtures import signature
from billing.tests.test_subscriptions import trial  # noqa: F401 - the fixture


def _deliver(client: Client, event: dict) -> WebhookEventTrigger:
    payload = json.dumps(event)
    response = client.post(
        "/stripe/webhook/",
        data=payload,
        content_type="application/json",
        headers={"stripe_signature": signature(payload, WEBHOOK_SECRET)},
    )
    assert response.status_code == 200, response.content
    return WebhookEventTrigger.objects.get(pk=int(response.content))


def _process(trigger: WebhookEventTrigger) -> bool:
    return bool(tasks.webhook_trigger_process.apply(args=[trigger.pk]).get())


def _subscription_events(stripe_local, subscription_id: str) -> list[dict]:
    return [
        e
        for e in stripe_local.events()
        if e["type"].startswith("customer.subscription.") and e["data"]["object"]["id"] == subscription_id
    ]


def _pay(account: BillingAccount) -> None:
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=account.stripe_customer_id)
    stripe.Subscription.modify(
        account.stripe_subscription_id,
        trial_end="now",
        default_payment_method=card.id,
        payment_behavior="error_if_incomplete",
    )


def test_duplicate_event_is_processed_once(client, trial, endpoint, stripe_local):  # noqa: F811
    account = BillingAccount.objects.get(tenant=trial.tenant)
    created = _subscription_events(stripe_local, account.stripe_subscription_id)[0]
    first, second = _deliver(client, created), _deliver(client, created)
    assert _process(first) is True
    assert _process(second) is True
    assert _process(first) is False  # already done: a redelivered task does nothing
    assert Event.objects.filter(id=created["id"]).count() == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.processed and second.processed
    assert first.event_id == second.event_id == created["id"]


def test_events_out_of_order_converge_on_stripes_current_subscription(
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
):
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    events = _subscription_events(stripe_local, account.stripe_subscription_id)
    assert events[0]["data"]["object"]["status"] == "trialing"
    # Make our copy stale, then deliver the newest first and the oldest (trialing) last.
    BillingAccount.objects.filter(id=account.id).update(status="trialing")
    for event in reversed(events):
        assert _process(_deliver(client, event))
    account.refresh_from_db()
    assert account.status == "active"  # what Stripe says now, not what the last event said
    assert account.payment_method_last4 == "4242"


def test_a_failing_handler_is_recorded_and_the_sweep_runs_it_again(
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
    settings,
):
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    updated = [
        e
        for e in _subscription_events(stripe_local, account.stripe_subscription_id)
        if e["type"].endswith("updated")
    ]
    BillingAccount.objects.filter(id=account.id).update(status="trialing")
    trigger = _deliver(client, updated[-1])

    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable while the handler runs
    assert _process(trigger) is False
    trigger.refresh_from_db()
    assert not trigger.processed and trigger.exception
    assert "Traceback" in trigger.traceback
    assert not Event.objects.filter(id=updated[-1]["id"]).exists()  # rolled back, not half-done
    assert BillingAccount.objects.get(id=account.id).status == "trialing"

    settings.STRIPE_API_BASE = stripe_local.url
    WebhookEventTrigger.objects.filter(pk=trigger.pk).update(
        created=trigger.created - webhook_processing.RETRY_AFTER - timedelta(seconds=1)
    )
    assert webhook_processing.triggers_unprocessed() == [trigger.pk]
    assert _process(trigger) is True  # what the sweep's task does
    assert webhook_processing.triggers_unprocessed() == []
    assert BillingAccount.objects.get(id=account.id).status == "active"


def test_payment_failed_starts_dunning_and_paid_restores(client, trial, endpoint, stripe_local):  # noqa: F811
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    bad = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=account.stripe_customer_id)
    sub = stripe.Subscription.retrieve(account.stripe_subscription_id)
    enterprise = stripe.Price.list(lookup_keys=["leanvibe_enterprise_month"]).data[0]
    stripe.Subscription.modify(
        sub.id,
        items=[{"id": sub["items"].data[0].id, "price": enterprise.id}],
        default_payment_method=bad.id,
        proration_behavior="always_invoice",
    )
    failed = stripe_local.events("invoice.payment_failed")
    assert failed, "the local Stripe made no failed payment"
    assert _process(_deliver(client, failed[-1]))
    account.refresh_from_db()
    assert account.payment_failed_at is not None and account.status == "past_due"
    assert account.access == "ok"  # grace period: limits kept, banner shown

    invoice_id = failed[-1]["data"]["object"]["id"]
    good = stripe.PaymentMethod.attach("pm_card_visa", customer=account.stripe_customer_id)
    stripe.Invoice.pay(invoice_id, payment_method=good.id)
    paid = [e for e in stripe_local.events("invoice.paid") if e["data"]["object"]["id"] == invoice_id]
    assert paid
    assert _process(_deliver(client, paid[-1]))
    account.refresh_from_db()
    assert account.payment_failed_at is None
    # A failure that arrives after the payment (out of order): Stripe says paid, nothing changes.
    redelivered = dict(failed[-1], id=failed[-1]["id"] + "_late")
    assert _process(_deliver(client, redelivered))
    account.refresh_from_db()
    assert account.payment_failed_at is None


def _complete_checkout(checkout_url: str, card: str) -> int:
    """What the owner's browser does on the local Stripe's Checkout page (no redirect followed)."""
    parts = urlsplit(checkout_url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    connection.request(
        "POST",
        parts.path,
        body=urlencode({"email": "owner@example.com", "card_number": card}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    status = connection.getresponse().status
    connection.close()
    return status


def test_completed_checkout_replaces_the_trial(api, client, trial, endpoint, stripe_local):  # noqa: F811
    account = BillingAccount.objects.get(tenant=trial.tenant)
    trial_id = account.stripe_subscription_id
    ctx = {"host": trial.host, "token": trial.login(api)}
    checkout_url = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "starter", "interval": "year"}, **ctx
    ).body["checkout_url"]
    assert _complete_checkout(checkout_url, "4242424242424242") in (302, 303)
    completed = stripe_local.events("checkout.session.completed")
    assert completed
    assert _process(_deliver(client, completed[-1]))
    account.refresh_from_db()
    assert account.stripe_subscription_id != trial_id
    assert (account.plan, account.interval, account.status) == ("starter", "year", "active")
    assert stripe.Subscription.retrieve(trial_id).status == "canceled"
    # The trial's deletion event, processed afterwards, changes nothing.
    deleted = [e for e in _subscription_events(stripe_local, trial_id) if e["type"].endswith("deleted")]
    for event in deleted:
        assert _process(_deliver(client, event))
    account.refresh_from_db()
    assert (account.plan, account.status) == ("starter", "active")


def test_checkout_replaces_the_trial_when_the_new_subscription_is_synced_first(
    api,
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
):
    """Stripe does not order events: the new subscription's ``created`` may be processed before
    ``checkout.session.completed`` (the account then already names it); the trial is cancelled
    all the same (found by the Chromium checkout test)."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    trial_id = account.stripe_subscription_id
    ctx = {"host": trial.host, "token": trial.login(api)}
    checkout_url = api.post(
        "/api/v1/billing/subscribe", {"plan_id": "professional", "interval": "month"}, **ctx
    ).body["checkout_url"]
    assert _complete_checkout(checkout_url, "4242424242424242") in (302, 303)
    completed = stripe_local.events("checkout.session.completed")[-1]
    new_id = completed["data"]["object"]["subscription"]
    created = [e for e in _subscription_events(stripe_local, new_id) if e["type"].endswith("created")]
    assert created
    assert _process(_deliver(client, created[-1]))
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.status) == (new_id, "active")

    assert _process(_deliver(client, completed))
    account.refresh_from_db()
    assert (account.stripe_subscription_id, account.plan) == (new_id, "professional")
    assert account.status == "active"
    assert stripe.Subscription.retrieve(trial_id).status == "canceled"
    assert stripe.Subscription.retrieve(new_id).status == "active"


def _lock_free_elsewhere(customer_id: str) -> bool:
    """Whether another session could take the customer's processing lock now."""
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        row = other.execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))",
            [webhook_processing._CUSTOMER_LOCK, customer_id],
        ).fetchone()
        taken = bool(row and row[0])
        if taken:
            other.execute(
                "SELECT pg_advisory_unlock(%s, hashtext(%s))",
                [webhook_processing._CUSTOMER_LOCK, customer_id],
            )
        return taken


def test_events_of_one_customer_are_processed_one_at_a_time(client, trial, endpoint, stripe_local):  # noqa: F811
    """Handlers of different event types lock the account and dj-stripe's rows in different
    orders; two workers on two events of one customer deadlocked (bench/webhooks.py). Processing
    holds a lock on the customer's id until its transaction ends."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    created = _subscription_events(stripe_local, account.stripe_subscription_id)[0]
    trigger = _deliver(client, created)
    assert webhook_processing._customer_of(trigger) == account.stripe_customer_id
    assert _lock_free_elsewhere(account.stripe_customer_id)
    # The test's transaction stands for the worker's: still open after processing.
    assert webhook_processing.trigger_process(trigger_id=trigger.pk) is True
    assert not _lock_free_elsewhere(account.stripe_customer_id)
    assert _lock_free_elsewhere("cus_someone_else")
