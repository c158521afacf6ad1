"""Billing's metrics with the real flow: Stripe's own events from the local Stripe, signed and
posted to ``/stripe/webhook/``, processed by the worker's task in process; then beat's snapshot,
scraped, holds the MRR and the tenants in dunning."""

from __future__ import annotations

import json
from typing import Any

from django.test import Client

from billing.models import BillingAccount
from billing.revenue import mrr_compute
from billing.tests.test_subscriptions import trial  # noqa: F401 - the fixture
from billing.tests.test_webhook_processing import (
    _deliver,
    _fail_next_payment,
    _pay,
    _process,
    _subscription_events,
)
from leanvibe.metrics import metrics_snapshot_take
from leanvibe.tests.metrics_helpers import sample, scrape, value

EVENTS = "leanvibe_webhook_events_total"


def test_webhook_events_count_received_rejected_processed_and_failed(
    client: Client,
    trial: Any,  # noqa: F811
    endpoint: Any,
    stripe_local: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    account = BillingAccount.objects.get(tenant=trial.tenant)
    _pay(account)
    good = [
        e
        for e in _subscription_events(stripe_local, account.stripe_subscription_id)
        if e["type"].endswith("updated")
    ][-1]
    bad = json.loads(json.dumps(good))  # signed, but its subscription does not exist at Stripe
    bad["id"], bad["data"]["object"]["id"] = good["id"] + "_ghost", "sub_does_not_exist"
    kind = "customer.subscription.updated"
    before = {r: value(EVENTS, type=kind, result=r) for r in ("received", "processed", "failed")}
    rejected = value(EVENTS, type="unknown", result="rejected")

    with django_capture_on_commit_callbacks(execute=True):
        forged = client.post(
            "/stripe/webhook/",
            data=json.dumps(good),
            content_type="application/json",
            headers={"stripe_signature": "t=1,v1=deadbeef"},
        )
        assert forged.status_code == 400
        bad_trigger = _deliver(client, bad)
        _deliver(client, good)
        assert _process(bad_trigger) is True  # the good one processed, the bad one failed

    assert value(EVENTS, type="unknown", result="rejected") == rejected + 1
    assert value(EVENTS, type=kind, result="received") == before["received"] + 2
    assert value(EVENTS, type=kind, result="processed") == before["processed"] + 1
    assert value(EVENTS, type=kind, result="failed") == before["failed"] + 1


def test_the_snapshot_holds_the_mrr_and_the_tenants_in_dunning(
    client: Client,
    trial: Any,  # noqa: F811
    endpoint: Any,
    stripe_local: Any,
) -> None:
    account = BillingAccount.objects.get(tenant=trial.tenant)
    metrics_snapshot_take()
    assert sample(scrape(client), "leanvibe_tenants_in_dunning") == 0

    _pay(account)
    _fail_next_payment(account)
    for event in stripe_local.events("customer.subscription.updated"):
        _process(_deliver(client, event))  # our mirror of the subscription, as the worker keeps it
    assert _process(_deliver(client, stripe_local.events("invoice.payment_failed")[-1]))
    account.refresh_from_db()
    assert account.payment_failed_at is not None

    metrics_snapshot_take()
    scraped = scrape(client)
    assert sample(scraped, "leanvibe_tenants_in_dunning") == 1
    mrr = mrr_compute().mrr
    assert mrr > 0 and sample(scraped, "leanvibe_billing_mrr_cents") == mrr
