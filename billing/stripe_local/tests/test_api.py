"""The API through the real ``stripe`` library: customers, cards, catalogue, subscriptions,
invoices, meters, errors, idempotency and pagination."""

# The library's types make every expandable field a union (id | object | None); the tests read
# the shapes the server answers, so those checks are off here.
# mypy: disable-error-code="union-attr, arg-type, operator, index"

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import pytest
import stripe

from billing.stripe_local import StripeLocal


def _plan(*, amount: int = 2000, interval: str = "month", lookup_key: str | None = None) -> stripe.Price:
    product = stripe.Product.create(name=f"Plan {amount}")
    params: dict[str, object] = {}
    if lookup_key:
        params["lookup_key"] = lookup_key
    return stripe.Price.create(
        product=product.id, unit_amount=amount, currency="eur", recurring={"interval": interval}, **params
    )


def _customer_with_card(card: str = "pm_card_visa") -> tuple[stripe.Customer, stripe.PaymentMethod]:
    customer = stripe.Customer.create(email="ada@acme.test", name="Ada", metadata={"tenant": "acme"})
    pm = stripe.PaymentMethod.attach(card, customer=customer.id)
    customer = stripe.Customer.modify(customer.id, invoice_settings={"default_payment_method": pm.id})
    return customer, pm


def test_customer_and_card(local: StripeLocal) -> None:
    customer, pm = _customer_with_card()
    assert pm.id.startswith("pm_") and pm.id != "pm_card_visa"
    assert (pm.card.brand, pm.card.last4, pm.customer) == ("visa", "4242", customer.id)
    assert customer.invoice_settings.default_payment_method == pm.id
    assert customer.metadata["tenant"] == "acme"
    listed = stripe.PaymentMethod.list(customer=customer.id, type="card")
    assert [p.id for p in listed.data] == [pm.id]
    expanded = stripe.Customer.retrieve(customer.id, expand=["invoice_settings.default_payment_method"])
    assert expanded.invoice_settings.default_payment_method.card.last4 == "4242"
    mastercard = stripe.PaymentMethod.attach("pm_card_mastercard", customer=customer.id)
    assert mastercard.card.brand == "mastercard"
    stripe.PaymentMethod.detach(pm.id)
    assert stripe.Customer.retrieve(customer.id).invoice_settings.default_payment_method is None
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", customer=customer.id)
    assert failing.card.last4 == "0341"
    updated = stripe.Customer.modify(customer.id, metadata={"tenant": ""}, email="new@acme.test")
    assert updated.metadata.to_dict() == {} and updated.email == "new@acme.test"
    deleted = stripe.Customer.delete(customer.id)
    assert deleted.deleted is True
    assert stripe.Customer.retrieve(customer.id).deleted is True


def test_errors_raise_the_library_exceptions(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    with pytest.raises(stripe.CardError) as declined:
        stripe.PaymentMethod.attach("pm_card_chargeDeclined", customer=customer.id)
    assert declined.value.code == "card_declined"
    assert declined.value.http_status == 402
    with pytest.raises(stripe.InvalidRequestError) as missing:
        stripe.Subscription.retrieve("sub_missing")
    assert missing.value.code == "resource_missing" and missing.value.http_status == 404
    with pytest.raises(stripe.InvalidRequestError) as bad:
        stripe.Price.create(product="prod_nope", unit_amount=1, currency="eur")
    assert bad.value.param == "product"
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="rk_live_nope")
    card = stripe.PaymentMethod.create(type="card", card={"token": "tok_visa"})
    assert card.card.last4 == "4242" and card.customer is None


def test_only_the_configured_key_when_given() -> None:
    with StripeLocal(api_key="sk_test_only") as server:
        client = stripe.StripeClient("sk_test_other", base_addresses={"api": server.url})
        with pytest.raises(stripe.AuthenticationError):
            client.v1.customers.list()
        ok = stripe.StripeClient("sk_test_only", base_addresses={"api": server.url})
        assert ok.v1.customers.list().data == []


def test_price_lookup_keys_and_transfer(local: StripeLocal) -> None:
    first = _plan(lookup_key="pro_monthly")
    found = stripe.Price.list(lookup_keys=["pro_monthly"], expand=["data.product"])
    assert [p.id for p in found.data] == [first.id]
    assert found.data[0].product.name == "Plan 2000"
    with pytest.raises(stripe.InvalidRequestError):
        _plan(amount=2500, lookup_key="pro_monthly")
    product = stripe.Product.create(name="Pro v2")
    second = stripe.Price.create(
        product=product.id,
        unit_amount_decimal="2500",
        currency="eur",
        recurring={"interval": "month"},
        lookup_key="pro_monthly",
        transfer_lookup_key=True,
    )
    assert stripe.Price.retrieve(first.id).lookup_key is None
    assert [p.id for p in stripe.Price.list(lookup_keys=["pro_monthly"]).data] == [second.id]
    assert second.unit_amount == 2500 and str(second.unit_amount_decimal) == "2500"
    stripe.Product.modify(product.id, default_price=second.id)
    products = stripe.Product.list(expand=["data.default_price"])
    assert products.data[0].default_price.id == second.id


def test_subscription_lifecycle_with_proration(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": basic.id}], expand=["latest_invoice", "default_payment_method"]
    )
    assert sub.status == "active"
    assert sub.latest_invoice.status == "paid" and sub.latest_invoice.amount_paid == 1000
    assert sub.latest_invoice.parent.subscription_details.subscription == sub.id
    item = sub["items"].data[0]
    assert item.current_period_end > item.current_period_start
    assert item.price.id == basic.id
    updated = stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": pro.id}], proration_behavior="create_prorations"
    )
    assert updated["items"].data[0].price.id == pro.id
    pending = stripe.InvoiceItem.list(customer=customer.id, pending=True)
    amounts = sorted(i.amount for i in pending.data)
    assert len(amounts) == 2 and amounts[0] < 0 < amounts[1]
    assert all(i.proration for i in pending.data)
    canceling = stripe.Subscription.modify(sub.id, cancel_at_period_end=True)
    assert canceling.cancel_at_period_end is True
    assert canceling.cancel_at == canceling["items"].data[0].current_period_end
    resumed = stripe.Subscription.modify(sub.id, cancel_at_period_end=False)
    assert resumed.cancel_at_period_end is False and resumed.cancel_at is None
    canceled = stripe.Subscription.cancel(sub.id)
    assert canceled.status == "canceled" and canceled.ended_at
    assert stripe.Subscription.list(customer=customer.id).data == []
    assert [s.id for s in stripe.Subscription.list(customer=customer.id, status="all").data] == [sub.id]
    types = [e["type"] for e in local.events()]
    for expected in (
        "customer.subscription.created",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoiceitem.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    ):
        assert expected in types
    update = next(
        e for e in local.events("customer.subscription.updated") if "cancel_at_period_end" in str(e)
    )
    assert "previous_attributes" in update["data"]


def test_always_invoice_and_trial(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    item = sub["items"].data[0]
    stripe.Subscription.modify(
        sub.id, items=[{"id": item.id, "price": pro.id}], proration_behavior="always_invoice"
    )
    latest = stripe.Invoice.retrieve(stripe.Subscription.retrieve(sub.id).latest_invoice)
    assert latest.billing_reason == "subscription_update" and latest.status == "paid"
    assert stripe.InvoiceItem.list(customer=customer.id, pending=True).data == []
    trial = stripe.Subscription.create(
        customer=customer.id, items=[{"price": basic.id}], trial_period_days=14
    )
    assert trial.status == "trialing" and trial.trial_end - trial.trial_start == 14 * 86400
    assert trial["items"].data[0].current_period_end == trial.trial_end


def test_first_payment_failure_leaves_subscription_incomplete(local: StripeLocal) -> None:
    customer, _ = _customer_with_card("pm_card_chargeCustomerFail")
    price = _plan()
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], expand=["latest_invoice"]
    )
    assert sub.status == "incomplete" and sub.latest_invoice.status == "open"
    with pytest.raises(stripe.CardError):
        stripe.Subscription.create(
            customer=customer.id, items=[{"price": price.id}], payment_behavior="error_if_incomplete"
        )
    good = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id)
    paid = stripe.Invoice.pay(sub.latest_invoice.id, payment_method=good.id)
    assert paid.status == "paid"
    assert stripe.Subscription.retrieve(sub.id).status == "active"


def _meter(event_name: str = "ai_requests") -> stripe.billing.Meter:
    return stripe.billing.Meter.create(
        display_name="AI requests",
        event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
        value_settings={"event_payload_key": "value"},
    )


def test_metered_usage_in_preview_and_summaries(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    meter = _meter()
    product = stripe.Product.create(name="AI overage")
    metered = stripe.Price.create(
        product=product.id,
        currency="eur",
        unit_amount_decimal="2.5",
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    base = _plan(amount=1000)
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": base.id}, {"price": metered.id}])
    now = int(time.time())
    for n in range(3):
        stripe.billing.MeterEvent.create(
            event_name="ai_requests",
            payload={"stripe_customer_id": customer.id, "value": "40"},
            identifier=f"evt-{n}",
            timestamp=now,
        )
    stripe.InvoiceItem.create(customer=customer.id, amount=500, currency="eur", description="Setup")
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    by_price = {
        line.pricing.price_details.price: line.amount
        for line in preview.lines.data
        if line.pricing.price_details
    }
    assert by_price[base.id] == 1000
    assert by_price[metered.id] == 300  # 120 requests at 2.5 cents
    assert preview.amount_due == 1000 + 300 + 500
    summaries = stripe.billing.Meter.list_event_summaries(
        meter.id, customer=customer.id, start_time=now - 60, end_time=now + 60
    )
    assert summaries.data[0].aggregated_value == 120
    deactivated = stripe.billing.Meter.deactivate(meter.id)
    assert deactivated.status == "inactive"
    assert [m.id for m in stripe.billing.Meter.list(status="inactive").data] == [meter.id]


def test_meter_event_identifier_and_timestamp_rules(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    _meter()
    payload = {"stripe_customer_id": customer.id, "value": "1"}
    identifier = str(uuid.uuid4())
    event = stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, identifier=identifier)
    assert event.identifier == identifier and event.payload["value"] == "1"
    with pytest.raises(stripe.InvalidRequestError) as duplicate:
        stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, identifier=identifier)
    assert "already exists" in duplicate.value.user_message
    now = int(time.time())
    with pytest.raises(stripe.InvalidRequestError) as old:
        stripe.billing.MeterEvent.create(
            event_name="ai_requests", payload=payload, timestamp=now - 36 * 86400
        )
    assert old.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now + 600)
    stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now - 34 * 86400)
    stripe.billing.MeterEvent.create(event_name="ai_requests", payload=payload, timestamp=now + 240)


def test_idempotency_key_replays_the_answer(local: StripeLocal) -> None:
    key = str(uuid.uuid4())
    first = stripe.Customer.create(email="one@acme.test", idempotency_key=key)
    again = stripe.Customer.create(email="one@acme.test", idempotency_key=key)
    assert first.id == again.id
    assert len(stripe.Customer.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        stripe.Customer.create(email="two@acme.test", idempotency_key=key)


def test_list_pagination(local: StripeLocal) -> None:
    ids = [stripe.Customer.create(email=f"c{n}@acme.test").id for n in range(7)]
    page = stripe.Customer.list(limit=3)
    assert [c.id for c in page.data] == ids[::-1][:3] and page.has_more
    nxt = stripe.Customer.list(limit=3, starting_after=page.data[-1].id)
    assert [c.id for c in nxt.data] == ids[::-1][3:6]
    back = stripe.Customer.list(limit=2, ending_before=nxt.data[0].id)
    assert [c.id for c in back.data] == ids[::-1][1:3]
    assert [c.id for c in stripe.Customer.list(limit=3).auto_paging_iter()] == ids[::-1]
    events = stripe.Event.list(type="customer.created", limit=100)
    assert len(events.data) == 7
    assert stripe.Event.retrieve(events.data[0].id).type == "customer.created"
    assert stripe.Account.retrieve().id.startswith("acct_")


def test_v2_meter_events_and_stream(local: StripeLocal) -> None:
    client = stripe.StripeClient("sk_test_v2", base_addresses={"api": local.url, "meter_events": local.url})
    customer = client.v1.customers.create()
    meter = client.v1.billing.meters.create(
        {"display_name": "AI", "event_name": "ai_requests", "default_aggregation": {"formula": "sum"}}
    )
    event = client.v2.billing.meter_events.create(
        {"event_name": "ai_requests", "payload": {"stripe_customer_id": customer.id, "value": "5"}}
    )
    assert event.identifier
    session = client.v2.billing.meter_event_session.create()
    stream = stripe.StripeClient(
        session.authentication_token, base_addresses={"api": local.url, "meter_events": local.url}
    )
    stream.v2.billing.meter_event_stream.create(
        {
            "events": [
                {
                    "event_name": "ai_requests",
                    "payload": {"stripe_customer_id": customer.id, "value": "7"},
                    "identifier": "stream-1",
                }
            ]
        }
    )
    now = int(time.time())
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert summaries.data[0].aggregated_value == 12
    client.v1.billing.meter_event_adjustments.create(
        {"event_name": "ai_requests", "type": "cancel", "cancel": {"identifier": "stream-1"}}
    )
    summaries = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": customer.id, "start_time": now - 60, "end_time": now + 60}
    )
    assert summaries.data[0].aggregated_value == 5


def test_search_and_includable_expansions(local: StripeLocal) -> None:
    acme = stripe.Customer.create(email="ada@acme.test", metadata={"tenant": "acme"})
    stripe.Customer.create(email="bob@other.test", metadata={"tenant": "other"})
    found = stripe.Customer.search(query="metadata['tenant']:'acme'")
    assert [c.id for c in found.data] == [acme.id]
    assert [c.id for c in stripe.Customer.search(query="email~'other'").data] != [acme.id]
    price = _plan()
    stripe.PaymentMethod.attach("pm_card_visa", customer=acme.id)
    sub = stripe.Subscription.create(
        customer=acme.id,
        items=[{"price": price.id}],
        default_payment_method=stripe.PaymentMethod.list(customer=acme.id).data[0].id,
    )
    expanded = stripe.Customer.retrieve(acme.id, expand=["subscriptions", "sources", "tax_ids"])
    assert [s.id for s in expanded.subscriptions.data] == [sub.id]
    assert expanded.sources.data == []
    assert [s.id for s in stripe.Subscription.search(query="status:'active'").data] == [sub.id]
    session = stripe.checkout.Session.create(
        mode="subscription",
        line_items=[{"price": price.id, "quantity": 2}],
        success_url="http://127.0.0.1/ok",
        expand=["line_items", "total_details.breakdown"],
    )
    assert session.line_items.data[0].quantity == 2
    assert session.total_details.breakdown.discounts == []


def test_preview_of_a_plan_change_and_of_a_new_subscription(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    basic, pro = _plan(amount=1000), _plan(amount=3000)
    new = stripe.Invoice.create_preview(
        customer=customer.id, subscription_details={"items": [{"price": pro.id}]}
    )
    assert new.amount_due == 3000 and new.status == "draft"
    assert stripe.Subscription.list(customer=customer.id).data == []
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": basic.id}])
    item = sub["items"].data[0]
    events_before = len(local.events())
    preview = stripe.Invoice.create_preview(
        customer=customer.id,
        subscription=sub.id,
        subscription_details={
            "items": [{"id": item.id, "price": pro.id}],
            "proration_behavior": "always_invoice",
        },
    )
    assert 1990 <= preview.amount_due <= 2000  # 3000 - 1000 for (almost) the whole period
    assert any(line.parent.invoice_item_details.proration for line in preview.lines.data)
    assert len(local.events()) == events_before
    assert stripe.Subscription.retrieve(sub.id)["items"].data[0].price.id == basic.id
    assert stripe.InvoiceItem.list(customer=customer.id).data == []
    nxt = stripe.Invoice.create_preview(
        customer=customer.id,
        subscription=sub.id,
        subscription_details={"items": [{"id": item.id, "price": pro.id}]},
    )
    assert nxt.amount_due == 3000 + preview.amount_due


def test_item_added_and_removed_with_prorations(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    base, addon, yearly = _plan(amount=1000), _plan(amount=400), _plan(amount=9000, interval="year")
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": base.id}])
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(customer=customer.id, items=[{"price": base.id}, {"price": yearly.id}])
    added = stripe.SubscriptionItem.create(subscription=sub.id, price=addon.id, quantity=2)
    assert added.quantity == 2 and added.price.id == addon.id
    assert len(stripe.SubscriptionItem.list(subscription=sub.id).data) == 2
    stripe.SubscriptionItem.delete(added.id)
    amounts = sorted(i.amount for i in stripe.InvoiceItem.list(customer=customer.id, pending=True).data)
    assert len(amounts) == 2 and amounts[0] == -amounts[1] and 790 <= amounts[1] <= 800
    switched = stripe.Subscription.modify(sub.id, items=[{"id": sub["items"].data[0].id, "price": yearly.id}])
    item = switched["items"].data[0]
    assert item.current_period_end - item.current_period_start >= 365 * 86400
    invoice = stripe.Invoice.retrieve(switched.latest_invoice)
    assert invoice.billing_reason == "subscription_update" and invoice.status == "paid"
    assert 9000 - 1000 <= invoice.amount_paid <= 9000


def test_tiered_and_transformed_prices(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    meter = _meter()
    product = stripe.Product.create(name="AI requests")
    graduated = stripe.Price.create(
        product=product.id,
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="graduated",
        tiers=[{"up_to": 1000, "unit_amount": 0}, {"up_to": "inf", "unit_amount_decimal": Decimal("2")}],
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
        lookup_key="leanvibe_overage_ai_requests",
    )
    assert graduated.unit_amount is None and graduated.billing_scheme == "tiered"
    with_tiers = stripe.Price.retrieve(graduated.id, expand=["tiers"])
    assert [t.up_to for t in with_tiers.tiers] == [1000, None]
    per_thousand = stripe.Price.create(
        product=product.id,
        currency="usd",
        unit_amount=100,
        transform_quantity={"divide_by": 1000, "round": "up"},
        recurring={"interval": "month"},
    )
    volume = stripe.Price.create(
        product=product.id,
        currency="usd",
        billing_scheme="tiered",
        tiers_mode="volume",
        tiers=[{"up_to": 5, "unit_amount": 1000}, {"up_to": "inf", "unit_amount": 800, "flat_amount": 500}],
        recurring={"interval": "month"},
    )
    sub = stripe.Subscription.create(
        customer=customer.id,
        items=[
            {"price": graduated.id},
            {"price": per_thousand.id, "quantity": 2500},
            {"price": volume.id, "quantity": 6},
        ],
    )
    first = stripe.Invoice.retrieve(sub.latest_invoice)
    assert first.amount_paid == 3 * 100 + 6 * 800 + 500
    stripe.billing.MeterEvent.create(
        event_name="ai_requests", payload={"stripe_customer_id": customer.id, "value": "1500"}
    )
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    usage = [line for line in preview.lines.data if line.pricing.price_details.price == graduated.id]
    assert usage[0].amount == 500 * 2


def test_lists_a_full_sync_walks(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    price = _plan()
    assert stripe.Charge.list(customer=customer.id).data == []
    assert stripe.PaymentIntent.list().data == []
    assert stripe.Coupon.list().data == []
    assert stripe.Customer.list_tax_ids(customer.id).data == []
    plans = stripe.Plan.list()
    assert [p.id for p in plans.data] == [price.id] and plans.data[0].amount == 2000
    assert stripe.Plan.retrieve(price.id).interval == "month"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Plan.retrieve("price_missing")


def test_manual_invoices_and_event_order(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    stripe.InvoiceItem.create(customer=customer.id, amount=1500, currency="eur", description="Onboarding")
    draft = stripe.Invoice.create(customer=customer.id, pending_invoice_items_behavior="include")
    assert draft.status == "draft" and draft.amount_due == 1500 and draft.parent is None
    assert stripe.InvoiceItem.list(customer=customer.id, pending=True).data == []
    final = stripe.Invoice.finalize_invoice(draft.id)
    assert final.status == "open" and final.number and final.hosted_invoice_url.startswith(local.url)
    paid = stripe.Invoice.pay(final.id, expand=["payments"])
    assert paid.status == "paid" and paid.payments.data[0].amount_paid == 1500
    other = stripe.Invoice.create(customer=customer.id)
    assert stripe.Invoice.delete(other.id).deleted is True
    third = stripe.Invoice.create(customer=customer.id)
    stripe.InvoiceItem.create(customer=customer.id, amount=700, currency="eur", invoice=third.id)
    assert stripe.Invoice.retrieve(third.id).amount_due == 700
    stripe.Invoice.finalize_invoice(third.id)
    assert stripe.Invoice.mark_uncollectible(third.id).status == "uncollectible"
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": _plan().id}])
    types = [e["type"] for e in local.events() if e["data"]["object"]["id"] in (sub.id, sub.latest_invoice)]
    assert types[:3] == ["customer.subscription.created", "invoice.created", "invoice.finalized"]
    created = local.events("customer.subscription.created")[-1]["data"]["object"]
    assert created["latest_invoice"] == sub.latest_invoice and created["status"] == "incomplete"


def test_previous_attributes_are_partial(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    update = local.events("customer.updated")[-1]["data"]["previous_attributes"]
    assert update == {"invoice_settings": {"default_payment_method": None}}
    stripe.Customer.modify(customer.id, metadata={"plan": "pro"})
    update = local.events("customer.updated")[-1]["data"]["previous_attributes"]
    assert update == {"metadata": {"plan": None}}


def test_concurrent_requests(local: StripeLocal) -> None:
    import threading

    errors: list[Exception] = []

    def create(n: int) -> None:
        try:
            for k in range(5):
                stripe.Customer.create(email=f"c{n}-{k}@acme.test")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    emails = {c.email for c in stripe.Customer.list(limit=100).auto_paging_iter()}
    assert len(emails) == 40


def test_unknown_parameters_are_refused_like_stripe(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    price = _plan()
    removed: dict[str, object] = {"coupon": "SPRING"}  # gone from subscriptions in this API version
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Subscription.create(customer=customer.id, items=[{"price": price.id}], **removed)
    assert refused.value.code == "parameter_unknown" and refused.value.param == "coupon"
    assert "Received unknown parameter: coupon" in str(refused.value.user_message)
    with StripeLocal(strict_params=False) as lenient:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": lenient.url})
        client.v1.customers.create({"whatever": "ok"})  # type: ignore[typeddict-unknown-key]


def test_cancel_now_with_proration_and_final_usage_invoice(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    meter = _meter()
    product = stripe.Product.create(name="AI")
    metered = stripe.Price.create(
        product=product.id,
        currency="eur",
        unit_amount=3,
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": _plan().id}, {"price": metered.id}]
    )
    stripe.billing.MeterEvent.create(
        event_name="ai_requests", payload={"stripe_customer_id": customer.id, "value": "10"}
    )
    canceled = stripe.Subscription.cancel(sub.id, prorate=True, invoice_now=True)
    assert canceled.status == "canceled"
    final = stripe.Invoice.retrieve(canceled.latest_invoice)
    amounts = sorted(line.amount for line in final.lines.data)
    assert amounts[-1] == 30 and amounts[0] < -1900  # usage billed, unused time credited


def test_meter_formulas_count_and_last(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    counted = stripe.billing.Meter.create(
        display_name="Calls", event_name="api_calls", default_aggregation={"formula": "count"}
    )
    seats = stripe.billing.Meter.create(
        display_name="Seats", event_name="seats", default_aggregation={"formula": "last"}
    )
    now = int(time.time())
    for n, value in enumerate(("3", "7", "5")):
        payload = {"stripe_customer_id": customer.id, "value": value}
        stripe.billing.MeterEvent.create(event_name="api_calls", payload=payload, timestamp=now - 30 + n)
        stripe.billing.MeterEvent.create(event_name="seats", payload=payload, timestamp=now - 30 + n)

    def summary(meter: stripe.billing.Meter) -> float:
        result = stripe.billing.Meter.list_event_summaries(
            meter.id, customer=customer.id, start_time=now - 60, end_time=now + 60
        )
        return result.data[0].aggregated_value

    assert summary(counted) == 3
    assert summary(seats) == 5


def test_coupons_and_promotion_codes(local: StripeLocal) -> None:
    customer, _ = _customer_with_card()
    price = _plan(amount=2000)
    half = stripe.Coupon.create(id="HALF", percent_off=50, duration="once")
    five = stripe.Coupon.create(amount_off=500, currency="eur", duration="repeating", duration_in_months=3)
    promo = stripe.PromotionCode.create(promotion={"type": "coupon", "coupon": five.id}, code="LAUNCH")
    assert stripe.PromotionCode.list(code="launch").data[0].id == promo.id
    sub = stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], discounts=[{"coupon": half.id}]
    )
    first = stripe.Invoice.retrieve(sub.latest_invoice)
    assert (first.subtotal, first.total, first.amount_paid) == (2000, 1000, 1000)
    assert first.total_discount_amounts[0].amount == 1000
    assert first.lines.data[0].discount_amounts[0].amount == 1000
    assert stripe.Coupon.retrieve("HALF").times_redeemed == 1
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    assert preview.total == 2000  # "once" is used up
    stripe.Subscription.modify(sub.id, discounts=[{"promotion_code": promo.id}])
    preview = stripe.Invoice.create_preview(customer=customer.id, subscription=sub.id)
    assert preview.total == 1500
    expanded = stripe.Subscription.retrieve(sub.id, expand=["discounts"])
    assert expanded.discounts[0].promotion_code == promo.id
    assert expanded.discounts[0].end is not None
    cleared = stripe.Subscription.modify(sub.id, discounts="")
    assert cleared.discounts == []
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(
            customer=customer.id, items=[{"price": price.id}], discounts=[{"coupon": "NOPE"}]
        )
    assert stripe.Coupon.delete(half.id).deleted is True


def test_unknown_nested_parameters_are_refused(local: StripeLocal) -> None:
    product = stripe.Product.create(name="Pro")
    recurring: dict[str, object] = {"interval": "month", "usage": "metered"}
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Price.create(product=product.id, currency="eur", unit_amount=100, recurring=recurring)
    assert refused.value.param == "recurring[usage]"
    price = _plan()
    customer = stripe.Customer.create()
    items: list[dict[str, object]] = [{"price": price.id, "qty": 2}]
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Subscription.create(customer=customer.id, items=items)
    assert refused.value.param == "items[0][qty]"


def test_invalid_enum_values(local: StripeLocal) -> None:
    customer = stripe.Customer.create()
    price = _plan()
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Subscription.create(
            customer=customer.id, items=[{"price": price.id}], payment_behavior="maybe"
        )
    assert refused.value.param == "payment_behavior"
    sub = stripe.Subscription.create(customer=customer.id, items=[{"price": price.id}])
    with pytest.raises(stripe.InvalidRequestError) as refused:
        stripe.Subscription.modify(sub.id, proration_behavior="sometimes")
    assert refused.value.param == "proration_behavior"
