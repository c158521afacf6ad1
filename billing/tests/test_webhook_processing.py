"""Verified events, processed as the worker processes them: Stripe's own events (from the local
Stripe), signed and posted to ``/stripe/webhook/``, then ``billing.tasks.webhook_trigger_process``
run in process. Duplicates are processed once, reordered events converge on Stripe's current
object, a failure is recorded and retried by the sweep."""

from __future__ import annotations

import http.client
import json
import weakref
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

import stripe
from django.conf import settings
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


def _fail_next_payment(account: BillingAccount) -> None:
    """A paying subscription moved to a dearer plan with a card that will fail: the prorated
    invoice is refused (``invoice.payment_failed``)."""
    bad = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=account.stripe_customer_id)
    sub = stripe.Subscription.retrieve(account.stripe_subscription_id)
    enterprise = stripe.Price.list(lookup_keys=["leanvibe_enterprise_month"]).data[0]
    stripe.Subscription.modify(
        sub.id,
        items=[{"id": sub["items"].data[0].id, "price": enterprise.id}],
        default_payment_method=bad.id,
        proration_behavior="always_invoice",
    )


def test_duplicate_event_is_processed_once(client, trial, endpoint, stripe_local):  # noqa: F811
    account = BillingAccount.objects.get(tenant=trial.tenant)
    created = _subscription_events(stripe_local, account.stripe_subscription_id)[0]
    first, second = _deliver(client, created), _deliver(client, created)
    assert _process(first) is True  # both: a customer's waiting triggers are processed together
    assert _process(second) is False  # already done: its own task finds nothing to do
    assert _process(first) is False  # a redelivered task does nothing
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
    _fail_next_payment(account)
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


def _plan_changes(account: BillingAccount, count: int) -> None:
    """``count`` plan changes charged at once: each makes a ``customer.subscription.updated`` and
    a paid invoice (``invoice.paid``)."""
    for index in range(count):
        sub = stripe.Subscription.retrieve(account.stripe_subscription_id)
        lookup = "leanvibe_enterprise_month" if index % 2 == 0 else "leanvibe_professional_month"
        price = stripe.Price.list(lookup_keys=[lookup]).data[0]
        stripe.Subscription.modify(
            sub.id,
            items=[{"id": sub["items"].data[0].id, "price": price.id}],
            proration_behavior="always_invoice",
        )


def test_a_burst_of_one_customers_events_is_applied_once(client, trial, endpoint, stripe_local):  # noqa: F811
    """The first task of a burst processes every waiting trigger of its customer: each event gets
    its ``Event``, and the subscription is re-read and applied once for the whole burst, not once
    per event (``bench/webhooks.py``: 4x the rate)."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    _plan_changes(account, 3)
    sub_id = account.stripe_subscription_id
    burst = [
        e
        for e in stripe_local.events()
        if e["type"] in ("customer.subscription.updated", "invoice.paid")
        and e["data"]["object"].get("customer") == account.stripe_customer_id
    ]
    invoices = {e["data"]["object"]["id"] for e in burst if e["type"] == "invoice.paid"}
    assert len(burst) >= 7 and len(invoices) >= 3
    triggers = [_deliver(client, e) for e in burst]
    BillingAccount.objects.filter(id=account.id).update(status="trialing", plan="starter")
    before = len(stripe_local.api_requests)

    assert _process(triggers[0]) is True
    served = stripe_local.api_requests[before:]
    assert all(_process(t) is False for t in triggers[1:])  # their tasks find them done
    for trigger in triggers:
        trigger.refresh_from_db()
        assert trigger.processed and not trigger.exception
        assert trigger.event_id == json.loads(trigger.body)["id"]
    assert Event.objects.filter(id__in=[e["id"] for e in burst]).count() == len(burst)
    # dj-stripe's handler of the newest subscription event and our one sync for the burst.
    assert served.count(("GET", f"/v1/subscriptions/{sub_id}")) == 2
    # Each invoice read once, by dj-stripe's handler (ours read what it stored).
    for invoice_id in invoices:
        assert served.count(("GET", f"/v1/invoices/{invoice_id}")) == 1
    account.refresh_from_db()
    stripe_sub = stripe.Subscription.retrieve(sub_id)
    assert (account.status, account.plan) == ("active", "enterprise")
    assert stripe_sub["items"].data[0].price.lookup_key == "leanvibe_enterprise_month"


def test_one_failing_event_of_a_burst_holds_up_none_of_the_others(
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
):
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    good = [
        e
        for e in _subscription_events(stripe_local, account.stripe_subscription_id)
        if e["type"].endswith("updated")
    ][-1]
    # Signed with the endpoint's secret and naming the customer, but its subscription does not
    # exist at Stripe: re-reading it fails.
    bad = json.loads(json.dumps(good))
    bad["id"] = good["id"] + "_ghost"
    bad["data"]["object"]["id"] = "sub_does_not_exist"
    BillingAccount.objects.filter(id=account.id).update(status="trialing")
    bad_trigger, good_trigger = _deliver(client, bad), _deliver(client, good)

    assert _process(bad_trigger) is True  # the good one was processed
    bad_trigger.refresh_from_db()
    good_trigger.refresh_from_db()
    assert good_trigger.processed and not good_trigger.exception
    assert not bad_trigger.processed and bad_trigger.exception and "Traceback" in bad_trigger.traceback
    assert not Event.objects.filter(id=bad["id"]).exists()
    assert BillingAccount.objects.get(id=account.id).status == "active"


def test_one_task_is_queued_per_burst_of_a_customer(
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
    django_capture_on_commit_callbacks,
):
    """A trigger whose customer has a task queued and not started queues none; once that task
    starts, the next trigger queues one again."""
    from leanvibe import redis as lv_redis
    from leanvibe.celery import app

    queue = app.conf.task_default_queue
    assert queue.startswith("lvtest-"), queue
    redis = lv_redis.client()
    redis.delete(queue)
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    events = [
        e
        for e in stripe_local.events()
        if e["data"]["object"].get("customer") == account.stripe_customer_id
        and e["type"] in ("customer.subscription.updated", "invoice.paid")
    ]
    assert len(events) >= 2
    try:
        with django_capture_on_commit_callbacks(execute=True):
            first = _deliver(client, events[0])
        with django_capture_on_commit_callbacks(execute=True):
            _deliver(client, events[1])
        assert redis.llen(queue) == 1  # one task for both
        assert redis.exists(webhook_processing.queued_key(account.stripe_customer_id))

        assert _process(first) is True  # the task starts: the mark goes, both are processed
        assert not redis.exists(webhook_processing.queued_key(account.stripe_customer_id))
        with django_capture_on_commit_callbacks(execute=True):
            _deliver(client, events[0])  # a duplicate, after the task started
        assert redis.llen(queue) == 2
    finally:
        redis.delete(queue)


def test_a_batchs_events_are_what_dj_stripe_would_make(trial, stripe_local):  # noqa: F811
    """Processing builds a batch's ``Event`` rows with dj-stripe's own mapping and one owner
    lookup (``BatchEvent``); each must equal what dj-stripe's ``Event.process`` makes, field by
    field (a dj-stripe upgrade that changes the mapping fails here)."""
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    for body in stripe_local.events()[:6]:
        owner = Event._find_owner_account(body, api_key=settings.STRIPE_SECRET_KEY)
        ours = webhook_processing._event_build(body, owner)
        theirs = Event._create_from_stripe_object(body, save=False, api_key=settings.STRIPE_SECRET_KEY)
        for field in Event._meta.concrete_fields:
            if field.name in ("djstripe_id", "djstripe_created", "djstripe_updated"):
                continue
            assert getattr(ours, field.attname) == getattr(theirs, field.attname), (body["type"], field.name)
    assert ours.djstripe_owner_account_id  # the endpoint's account, not None


def test_invoices_are_stored_by_dj_stripes_handler_code_without_line_item_rows(
    client,
    trial,  # noqa: F811
    endpoint,
    stripe_local,
):
    """Invoice events are handled by dj-stripe's own code (re-read, sync) through
    ``InvoiceMirror``: the invoice row holds Stripe's object (its lines included) and the
    batch's owner account; dj-stripe's per-line ``LineItem`` rows, which nothing reads and which
    cost half of each event, are not made."""
    from djstripe.event_handlers import handle_other_event
    from djstripe.models import Invoice, LineItem
    from djstripe.signals import WEBHOOK_SIGNALS

    for event_type in ("invoice.paid", "invoice.payment_failed", "invoice.created", "invoice.deleted"):
        receivers = [
            r() if isinstance(r, weakref.ReferenceType) else r
            for _, r, *_ in WEBHOOK_SIGNALS[event_type].receivers
        ]
        assert handle_other_event not in receivers, event_type
        assert webhook_processing.on_invoice_event in receivers, event_type
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    _plan_changes(account, 2)
    paid = [
        e
        for e in stripe_local.events("invoice.paid")
        if e["data"]["object"]["customer"] == account.stripe_customer_id
    ]
    triggers = [_deliver(client, e) for e in paid]
    assert _process(triggers[0])
    for event in paid:
        invoice = Invoice.objects.get(id=event["data"]["object"]["id"])
        assert invoice.stripe_data["status"] == "paid"
        assert invoice.stripe_data["lines"]["data"], "the lines are in the stored object"
        assert invoice.djstripe_owner_account_id
        assert invoice.customer.id == account.stripe_customer_id
    assert not LineItem.objects.exists()
